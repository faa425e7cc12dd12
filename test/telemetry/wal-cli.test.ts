/**
 * `autonomy wal …` through the built binary: append acknowledges on stdout,
 * read/inspect/verify are read-only and agree, reclaim follows telemetry.pos
 * and never goes beyond it, and bad input is a clear error (no stack trace).
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodePosition, encodeSafeSeq } from "../../src/telemetry/index.js";
import { describeRun, runCli, runJson } from "../helpers/cli.js";

let root = "";
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "wal-cli-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const lines = (n: number, from = 1): string => Array.from({ length: n }, (_, i) => JSON.stringify({ k: from + i, pad: "p".repeat(50) })).join("\n") + "\n";
const sealed = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((n) => /^telemetry\.wal\.\d{20}-\d{20}(\.[0-9a-f]{64})?$/.test(n));

describe("autonomy wal", () => {
  it("append prints one ack per durable entry; read prints them back as JSON lines", async () => {
    const dir = join(root, "basic");
    const r = await runCli(["wal", "append", "--dir", dir], { input: lines(5) });
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout).toBe("ack 1\nack 2\nack 3\nack 4\nack 5\n");
    const read = await runCli(["wal", "read", "--dir", dir, "--from", "4"]);
    expect(read.code, describeRun(read)).toBe(0);
    expect(read.stdout.trim().split("\n").map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual([4, 5]);
  });

  it("append --segment-bytes 0 (seed-exact mode) never seals and leaves only files seed 001 names in the directory", async () => {
    const dir = join(root, "exact");
    const r = await runCli(["wal", "append", "--dir", dir, "--segment-bytes", "0"], { input: lines(40) });
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout.trim().split("\n")).toHaveLength(40);
    expect((await readdir(dir)).sort()).toEqual(["telemetry.safe_seq", "telemetry.wal"]);
    const small = join(root, "exact-vs-bounded");
    expect((await runCli(["wal", "append", "--dir", small, "--segment-bytes", "300"], { input: lines(40) })).code).toBe(0);
    expect((await sealed(small)).length).toBeGreaterThan(0); // the same input does seal in the default (bounded) mode
  });

  it("append refuses a line that is not a JSON object with a clear error, after acknowledging the lines before it", async () => {
    const dir = join(root, "bad");
    const r = await runCli(["wal", "append", "--dir", dir], { input: `{"a":1}\n[1,2]\n{"b":2}\n` });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("ack 1\n");
    expect(r.stderr).toMatch(/line 2 is not a JSON object/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("with small segments: inspect shows them, reclaim deletes only what telemetry.pos confirmed, read says where entries start", async () => {
    const dir = join(root, "segments");
    const r = await runCli(["wal", "append", "--dir", dir, "--segment-bytes", "300"], { input: lines(30) });
    expect(r.code, describeRun(r)).toBe(0);
    const before = await sealed(dir);
    expect(before.length).toBeGreaterThan(3);

    const nothing = await runJson<{ segments: number; pos: number }>(["wal", "reclaim", "--dir", dir]);
    expect(nothing.code, describeRun(nothing)).toBe(0);
    expect(nothing.json).toMatchObject({ segments: 0, pos: 0 }); // no exporter position: keep everything

    // A position of another generation (here the 8-byte format of the legacy generation) is ignored, and left as it is.
    await writeFile(join(dir, "telemetry.pos"), encodeSafeSeq(12));
    const other = await runJson<{ segments: number; pos: number }>(["wal", "reclaim", "--dir", dir]);
    expect(other.json).toMatchObject({ segments: 0, pos: 0 });
    expect(await readFile(join(dir, "telemetry.pos"))).toEqual(Buffer.from(encodeSafeSeq(12)));
    const shown = await runJson<{ pos: number; pos_current: boolean; generation: string }>(["wal", "inspect", "--dir", dir]);
    expect(shown.json).toMatchObject({ pos: 12, pos_current: false });

    await writeFile(join(dir, "telemetry.pos"), encodePosition({ seq: 12, generation: shown.json.generation }));
    const rec = await runJson<{ segments: number; base: number }>(["wal", "reclaim", "--dir", dir]);
    expect(rec.code, describeRun(rec)).toBe(0);
    expect(rec.json.segments).toBeGreaterThan(0);
    expect(rec.json.base).toBeLessThanOrEqual(12);
    expect(Buffer.from(await readFile(join(dir, "telemetry.wal.base"))).readBigUInt64LE(0)).toBe(BigInt(rec.json.base));

    const inspect = await runJson<{ ok: boolean; base: number; segments: string[]; safe_seq: number }>(["wal", "inspect", "--dir", dir]);
    expect(inspect.code, describeRun(inspect)).toBe(0);
    expect(inspect.json).toMatchObject({ ok: true, base: rec.json.base, safe_seq: 30 });
    expect(inspect.json.segments.length).toBe(before.length - rec.json.segments);

    const read = await runCli(["wal", "read", "--dir", dir]);
    expect(read.code, describeRun(read)).toBe(0);
    expect(read.stderr).toContain(`seqs 1..${rec.json.base} were reclaimed`);
    const seqs = read.stdout.trim().split("\n").map((l) => (JSON.parse(l) as { seq: number }).seq);
    expect(seqs).toEqual(Array.from({ length: 30 - rec.json.base }, (_, i) => rec.json.base + 1 + i));

    const out = join(root, "wal_verify.json");
    const v = await runCli(["wal", "verify", "--dir", dir, "--out", out, "--fs", "ext4"]);
    expect(v.code, describeRun(v)).toBe(0);
    const report = JSON.parse(await readFile(out, "utf8")) as { pass: boolean; invariants: Record<string, { pass: boolean }> };
    expect(report.pass).toBe(true);
  });

  it("verify exits 5 and names the cause when a sealed segment lost its tail", async () => {
    const dir = join(root, "damaged");
    expect((await runCli(["wal", "append", "--dir", dir, "--segment-bytes", "300"], { input: lines(20) })).code).toBe(0);
    const [first] = (await sealed(dir)).sort();
    const path = join(dir, first ?? "");
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, bytes.length - 5));
    const v = await runCli(["wal", "verify", "--dir", dir, "--out", join(root, "damaged.json")]);
    expect(v.code, describeRun(v)).toBe(5);
    expect(v.stdout).toContain("SEGMENT_INVALID");
    const read = await runCli(["wal", "read", "--dir", dir]);
    expect(read.code, describeRun(read)).toBe(5);
    expect(read.stderr).toMatch(/SEGMENT_INVALID/);
    expect(read.stderr).not.toMatch(/\n\s+at /);
    const reopen = await runCli(["wal", "append", "--dir", dir], { input: lines(1) });
    expect(reopen.code).toBe(5);
    expect(reopen.stderr).toMatch(/SEGMENT_INVALID/);
  });
  it("read, inspect, verify and reclaim refuse a directory that does not exist (WAL_DIR_MISSING, exit 1) and create nothing there", async () => {
    const dir = join(root, "no-such-wal");
    for (const args of [["read"], ["inspect"], ["verify", "--out", join(root, "nope.json")], ["reclaim"]]) {
      const r = await runCli(["wal", ...args, "--dir", dir]);
      expect(r.code, describeRun(r)).toBe(1);
      expect(r.stderr).toMatch(/no-such-wal is missing: there is no WAL to read here\nhint: check the path/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    const j = await runJson(["wal", "inspect", "--dir", dir, "--json"]);
    expect(j.json.code).toBe("WAL_DIR_MISSING");
    expect((await readdir(root)).filter((n) => n.startsWith("no-such-wal") || n === "nope.json")).toEqual([]);
  });

  it("read --from 0 on a WAL that reclaimed nothing prints no reclamation note", async () => {
    const dir = join(root, "from-zero");
    expect((await runCli(["wal", "append", "--dir", dir, "--segment-bytes", "0"], { input: lines(2) })).code).toBe(0);
    const r = await runCli(["wal", "read", "--dir", dir, "--from", "0"]);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stderr).not.toMatch(/reclaimed/);
    expect(r.stdout.trim().split("\n")).toHaveLength(2);
  });
});
