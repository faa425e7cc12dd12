/**
 * Seed-exact mode (`segmentBytes: 0`; docs/wal.md "On-disk modes"): the WAL
 * never seals and never writes into its directory a file seed 001 does not
 * name, so any seed-001 implementation reads the directory as it is.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Wal, walPaths } from "./index.js";
import { generationPath } from "./generation.js";
import type { WalLogger } from "./index.js";

const quiet: WalLogger = { warn: () => undefined, error: () => undefined };
/** Every file seed 001 names for its directory. */
const SEED_FILES = new Set(["telemetry.wal", "telemetry.safe_seq", "telemetry.safe_seq.tmp", "telemetry.pos"]);

async function dirOf(): Promise<string> {
  return join(await mkdtemp(join(tmpdir(), "wal-exact-")), "wal");
}

describe("seed-exact mode (segmentBytes 0)", () => {
  it("never seals: 17 MiB of entries (past the default 16 MiB segment) stay in telemetry.wal", async () => {
    const dir = await dirOf();
    const wal = await Wal.open(dir, { log: quiet, segmentBytes: 0 });
    const big = "x".repeat(1024 * 1024);
    for (let i = 0; i < 17; i++) await wal.append({ i, big });
    expect(wal.sealedSegments).toEqual([]);
    expect((await wal.readFrom(17)).map((e) => e.event.i)).toEqual([16]);
    await wal.close();
    expect((await readdir(dir)).sort()).toEqual(["telemetry.safe_seq", "telemetry.wal"]);
  });

  it("writes only files the seed names into the directory, also while open; its lock and generation lie beside it", async () => {
    const dir = await dirOf();
    const wal = await Wal.open(dir, { log: quiet, segmentBytes: 0 });
    for (let i = 0; i < 50; i++) await wal.append({ i });
    expect((await readdir(dir)).filter((n) => !SEED_FILES.has(n))).toEqual([]);
    expect(existsSync(walPaths(dir).lock)).toBe(true);
    expect(walPaths(dir).lock).toBe(`${dir}.lock`);
    await wal.close();
    expect(existsSync(generationPath(dir))).toBe(true);
    expect((await readdir(dir)).filter((n) => !SEED_FILES.has(n))).toEqual([]);
  });

  it("never reclaims (that would write telemetry.wal.base): segments sealed earlier in the default mode stay", async () => {
    const dir = await dirOf();
    const bounded = await Wal.open(dir, { log: quiet, segmentBytes: 200 });
    for (let i = 0; i < 30; i++) await bounded.append({ i, pad: "p".repeat(20) });
    const sealed = bounded.sealedSegments.length;
    await bounded.close();
    expect(sealed).toBeGreaterThan(2);
    const exact = await Wal.open(dir, { log: quiet, segmentBytes: 0, confirmed: () => Promise.resolve(30) });
    expect(await exact.reclaim(30)).toMatchObject({ segments: 0, base: 0 });
    for (let i = 0; i < 30; i++) await exact.append({ i, pad: "p".repeat(20) });
    expect(exact.sealedSegments.length).toBe(sealed);
    await exact.close();
    expect(existsSync(join(dir, "telemetry.wal.base"))).toBe(false);
  });
});
