/**
 * Files beside the WAL directory are derived from its canonical path
 * (docs/wal.md "Files beside the directory"): every spelling of the directory —
 * here a symlink alias — shares one lock and one generation.
 */
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Wal, WalError, besideWalDir, canonicalWalDir, nodeWalFs, readGeneration, walPaths } from "./index.js";
import type { WalLogger } from "./index.js";
import { confirmedPos, writePos } from "../exporter/pos.js";
import { exporterLockPath } from "../exporter/exporter.js";
import { needs } from "../../../test/helpers/needs.js";

const quiet: WalLogger = { warn: () => undefined, error: () => undefined };

async function aliased(): Promise<{ real: string; alias: string }> {
  const root = await mkdtemp(join(tmpdir(), "wal-beside-"));
  const real = join(root, "real");
  await mkdir(real);
  const alias = join(root, "alias");
  await symlink(real, alias);
  return { real, alias };
}

describe("files beside the WAL directory, through a symlinked path", () => {
  it("a second writer through the alias is refused (WAL_LOCKED): both spellings name one lock", async () => {
    const { real, alias } = await aliased();
    expect(walPaths(alias).lock).toBe(walPaths(real).lock);
    const first = await Wal.open(real, { log: quiet, segmentBytes: 0 });
    await first.append({ a: 1 });
    const e: unknown = await Wal.open(alias, { log: quiet, segmentBytes: 0 }).then(() => "opened", (err: unknown) => err);
    expect(e).toBeInstanceOf(WalError);
    expect((e as WalError).code).toBe("WAL_LOCKED");
    await first.close();
  }, 15_000);

  it("the exporter and reclamation through the alias see the generation the writer started", async () => {
    const { real, alias } = await aliased();
    const wal = await Wal.open(real, { log: quiet, segmentBytes: 0 });
    for (let i = 0; i < 3; i++) await wal.append({ i });
    await wal.close();
    expect((await readGeneration(nodeWalFs, alias)).id).toBe(wal.generation);
    expect(exporterLockPath(alias)).toBe(exporterLockPath(real));
    await writePos(real, { seq: 2, generation: wal.generation });
    expect(await confirmedPos(alias)).toBe(2);
    // Reopening through the alias (as `wal reclaim --dir alias` does) continues the same generation.
    const again = await Wal.open(alias, { log: quiet, segmentBytes: 0 });
    expect(again.generation).toBe(wal.generation);
    expect(again.recovered.mode).toBe("safe_seq");
    await again.close();
  });

  it("a directory not created yet canonicalises to the same path before and after mkdir", async () => {
    const { real, alias } = await aliased();
    const before = canonicalWalDir(join(alias, "sub", "wal"));
    expect(before).toBe(join(real, "sub", "wal"));
    await mkdir(join(alias, "sub", "wal"), { recursive: true });
    expect(canonicalWalDir(join(alias, "sub", "wal"))).toBe(before);
    expect(besideWalDir(join(alias, "sub", "wal"), "generation")).toBe(join(real, "sub", "wal.generation"));
  });
});

const privileged = needs("root", "util-linux");

privileged.describe("a WAL directory that is a mount point under a read-only parent (needs root)", () => {
  it("fails with WAL_BESIDE_NOT_WRITABLE naming the parent, not as an unexpected failure", async () => {
    const parent = await mkdtemp(join(tmpdir(), "wal-ro-"));
    const dir = join(parent, "wal");
    const mounted: string[] = [];
    const mount = (...args: string[]): void => {
      const r = spawnSync("mount", args, { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`mount ${args.join(" ")}: ${r.stderr}`);
    };
    try {
      mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", parent);
      mounted.unshift(parent);
      await mkdir(dir);
      mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", dir);
      mounted.unshift(dir);
      mount("-o", "remount,ro", parent);
      const e: unknown = await Wal.open(dir, { log: quiet, segmentBytes: 0 }).then(() => "opened", (err: unknown) => err);
      expect(e).toBeInstanceOf(WalError);
      expect((e as WalError).code).toBe("WAL_BESIDE_NOT_WRITABLE");
      expect((e as WalError).message).toContain(`the WAL keeps its lock and generation beside its directory, in ${parent}; that directory must be writable`);
    } finally {
      for (const m of mounted) spawnSync("umount", [m]);
      await rm(parent, { recursive: true, force: true });
    }
  });
});
