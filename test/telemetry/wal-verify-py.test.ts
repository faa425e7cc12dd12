/**
 * scripts/wal_verify.py (the independent verifier, Python 3 standard library,
 * no code shared with src/telemetry) against our own read-only inspection, on
 * real directories: seed-exact and segmented WALs written through the Wal API,
 * then damaged at random (a file deleted, truncated, a byte flipped, a segment
 * renamed, garbage as base or safe point, a phantom appended). Whatever the
 * damage, both must reach the same verdict on every invariant, the fail-hard
 * cause, the violation codes and the counts (`compareVerdicts`, the same check
 * `autonomy lab portability` step 3 makes).
 */
import { execFileSync } from "node:child_process";
import { appendFile, mkdtemp, readFile, readdir, rename, rm, truncate, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { createHash } from "node:crypto";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import { INDEPENDENT_VERIFIER, compare as compareVerdicts } from "../../src/evidence/independent.js";
import { Wal, encodeFrame, inspectWalDir } from "../../src/telemetry/index.js";
import { needs } from "../helpers/needs.js";

const quiet = { warn: () => undefined, error: () => undefined };
/** docs/wal.md's base record, built here from the doc rather than by the code under test. */
const checkedBase = (seq: number): Buffer => {
  const field = Buffer.alloc(8);
  field.writeBigUInt64LE(BigInt(seq));
  return Buffer.concat([field, createHash("sha256").update(field).digest().subarray(0, 8)]);
};
const PYTHON = process.env.AUTONOMY_PYTHON ?? "python3";
let root = "";
let n = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "wal-verify-py-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function verifyPy(dir: string): { code: number; report: Record<string, unknown> } {
  try {
    return { code: 0, report: JSON.parse(execFileSync(PYTHON, [INDEPENDENT_VERIFIER, "--dir", dir], { encoding: "utf8" })) as Record<string, unknown> };
  } catch (e) {
    const err = e as { status?: number; stdout?: string };
    return { code: err.status ?? -1, report: JSON.parse(err.stdout ?? "{}") as Record<string, unknown> };
  }
}

type Damage = { kind: "none" | "delete" | "truncate" | "flip" | "rename" | "base" | "safe" | "phantom"; file: number; x: number; y: number };

async function damage(dir: string, d: Damage): Promise<void> {
  const files = (await readdir(dir)).filter((f) => f.startsWith("telemetry.")).sort();
  const path = join(dir, files[d.file % files.length] ?? "telemetry.wal");
  if (d.kind === "delete") await unlink(path);
  if (d.kind === "truncate") await truncate(path, Math.floor(((await readFile(path)).length * (d.x % 100)) / 100));
  if (d.kind === "flip") {
    const b = await readFile(path);
    if (b.length > 0) b[d.x % b.length] = (b[d.x % b.length] ?? 0) ^ (1 + (d.y % 255));
    await writeFile(path, b);
  }
  if (d.kind === "rename") await rename(path, join(dir, `telemetry.wal.${String(1 + (d.x % 30)).padStart(20, "0")}-${String(1 + (d.x % 30) + (d.y % 10)).padStart(20, "0")}`));
  if (d.kind === "base") await writeFile(join(dir, "telemetry.wal.base"), Buffer.from(Array.from({ length: d.x % 10 }, (_, i) => (i === 0 ? d.y % 40 : 0))));
  if (d.kind === "safe") await writeFile(join(dir, "telemetry.safe_seq"), Buffer.from(Array.from({ length: d.x % 10 }, (_, i) => (i === 0 ? d.y % 40 : 0))));
  if (d.kind === "phantom") await appendFile(join(dir, "telemetry.wal"), encodeFrame({ seq: 1000 + d.y, event: { phantom: true } }));
}

needs("python3").describe("scripts/wal_verify.py agrees with inspect", () => {
  it("on seed-exact and segmented WALs under random damage", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(0, 0, 120, 300),
        fc.integer({ min: 0, max: 25 }),
        fc.integer({ min: 0, max: 25 }),
        fc.record({ kind: fc.constantFrom("none", "delete", "truncate", "flip", "rename", "base", "safe", "phantom"), file: fc.nat(), x: fc.nat(), y: fc.nat() }) as fc.Arbitrary<Damage>,
        async (segmentBytes, entries, reclaimTo, d) => {
          const dir = join(root, `case-${++n}`);
          const wal = await Wal.open(dir, { log: quiet, segmentBytes });
          for (let k = 1; k <= entries; k++) await wal.append({ k, text: k % 4 === 0 ? "é→😀" : "ascii", pad: "p".repeat(k % 30) });
          await wal.reclaim(reclaimTo);
          await wal.close();
          await damage(dir, d);
          const ours = await inspectWalDir(dir);
          const theirs = verifyPy(dir);
          expect(compareVerdicts(ours, theirs.report), JSON.stringify(d)).toEqual([]);
          expect(theirs.code).toBe(ours.violations.length === 0 ? 0 : ours.fail_hard ? 5 : 1);
          if (segmentBytes === 0 && d.kind !== "base" && d.kind !== "rename") expect(theirs.report.layout).toBe("seed-exact");
        },
      ),
      { numRuns: 40 },
    );
  }, 180_000);

  // One hand-made directory per verdict, so every check of the verifier is exercised whatever the random cases hit.
  const frame = (seq: number, event: Record<string, unknown> = { seq }): Buffer => Buffer.from(encodeFrame({ seq, event }));
  const u64 = (v: number): Buffer => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    return b;
  };
  const seg = (first: number, last: number): string => `telemetry.wal.${String(first).padStart(20, "0")}-${String(last).padStart(20, "0")}`;
  const raw = (json: string): Buffer => {
    const b = Buffer.from(json, "utf8");
    const h = Buffer.alloc(4);
    h.writeUInt32BE(b.length);
    return Buffer.concat([h, b]);
  };
  const bad = raw("{x}");
  const cases: [string, Record<string, Buffer>, string | null][] = [
    ["a clean seed-exact WAL", { "telemetry.wal": Buffer.concat([frame(1), frame(2)]), "telemetry.safe_seq": u64(2) }, null],
    ["a torn tail", { "telemetry.wal": Buffer.concat([frame(1), frame(2).subarray(0, 5)]), "telemetry.safe_seq": u64(1) }, null],
    ["R1 first seq not 1", { "telemetry.wal": Buffer.concat([frame(2), frame(3)]), "telemetry.safe_seq": u64(3) }, "FIRST_SEQ_NOT_ONE"],
    ["R2 a gap", { "telemetry.wal": Buffer.concat([frame(1), frame(2), frame(4)]), "telemetry.safe_seq": u64(4) }, "SEQ_GAP"],
    ["R3 safe_seq past the last frame", { "telemetry.wal": Buffer.concat([frame(1), frame(2)]), "telemetry.safe_seq": u64(5) }, "SAFESEQ_GT_MAXSEQ"],
    ["R4 no frame at safe_seq", { "telemetry.wal": Buffer.alloc(0), "telemetry.safe_seq": u64(1) }, "SAFESEQ_NOT_FOUND"],
    ["R5 a phantom", { "telemetry.wal": Buffer.concat([frame(1), frame(2)]), "telemetry.safe_seq": u64(1) }, "PHANTOM_BEYOND_SAFESEQ"],
    ["corrupt JSON in the committed range", { "telemetry.wal": Buffer.concat([frame(1), bad, frame(3)]), "telemetry.safe_seq": u64(3) }, "WAL_CORRUPT_INVALID_JSON"],
    ["a non-integer seq", { "telemetry.wal": Buffer.concat([frame(1), raw('{"seq":2.5,"event":{}}')]), "telemetry.safe_seq": u64(2) }, "WAL_CORRUPT_INVALID_JSON"],
    ["seq written 2.0 (an integer in JSON's number syntax)", { "telemetry.wal": Buffer.concat([frame(1), raw('{"seq":2.0,"event":{}}')]), "telemetry.safe_seq": u64(2) }, null],
    ["NaN in an event (not JSON)", { "telemetry.wal": Buffer.concat([frame(1), raw('{"seq":2,"event":{"x":NaN}}')]), "telemetry.safe_seq": u64(2) }, "WAL_CORRUPT_INVALID_JSON"],
    ["a 7-byte safe_seq", { "telemetry.wal": frame(1), "telemetry.safe_seq": Buffer.alloc(7) }, "SAFESEQ_CORRUPT"],
    ["a clean segmented WAL", { [seg(1, 2)]: Buffer.concat([frame(1), frame(2)]), "telemetry.wal": frame(3), "telemetry.safe_seq": u64(3) }, null],
    ["reclaimed up to base", { "telemetry.wal.base": u64(2), [seg(3, 4)]: Buffer.concat([frame(3), frame(4)]), "telemetry.wal": frame(5), "telemetry.safe_seq": u64(5) }, null],
    ["a gap between segments", { [seg(1, 2)]: Buffer.concat([frame(1), frame(2)]), [seg(4, 5)]: Buffer.concat([frame(4), frame(5)]), "telemetry.wal": Buffer.alloc(0), "telemetry.safe_seq": u64(5) }, "SEQ_GAP"],
    ["a segment holding other seqs than its name", { [seg(1, 3)]: Buffer.concat([frame(1), frame(2)]), "telemetry.wal": frame(4), "telemetry.safe_seq": u64(4) }, "SEGMENT_INVALID"],
    ["a segment whose bytes changed (digest)", { [`${seg(1, 1)}.${"0".repeat(64)}`]: frame(1), "telemetry.wal": Buffer.alloc(0), "telemetry.safe_seq": u64(1) }, "SEGMENT_INVALID"],
    ["sealed frames beyond the safe point", { [seg(1, 2)]: Buffer.concat([frame(1), frame(2)]), "telemetry.wal": Buffer.alloc(0), "telemetry.safe_seq": u64(1) }, "SEGMENT_INVALID"],
    ["a corrupt base", { "telemetry.wal.base": Buffer.alloc(3), "telemetry.wal": frame(1), "telemetry.safe_seq": u64(1) }, "WAL_BASE_CORRUPT"],
    ["a checked base", { "telemetry.wal.base": checkedBase(2), [seg(3, 4)]: Buffer.concat([frame(3), frame(4)]), "telemetry.wal": frame(5), "telemetry.safe_seq": u64(5) }, null],
    ["a checked base whose seq changed on disk", { "telemetry.wal.base": Buffer.concat([u64(3), checkedBase(2).subarray(8)]), [seg(3, 4)]: Buffer.concat([frame(3), frame(4)]), "telemetry.wal": frame(5), "telemetry.safe_seq": u64(5) }, "WAL_BASE_CORRUPT"],
  ];
  it.each(cases)("%s: the same verdict, and the expected first cause", async (name, files, cause) => {
    const dir = join(root, name.replace(/[^a-z0-9]+/gi, "-"));
    const { mkdir } = await import("node:fs/promises");
    await mkdir(dir, { recursive: true });
    for (const [f, b] of Object.entries(files)) await writeFile(join(dir, f), b);
    const ours = await inspectWalDir(dir);
    const theirs = verifyPy(dir);
    expect(compareVerdicts(ours, theirs.report)).toEqual([]);
    const first = (theirs.report.violations as { code: string }[])[0]?.code ?? null;
    expect(cause === "PHANTOM_BEYOND_SAFESEQ" ? first : theirs.report.fail_hard ?? first).toBe(cause);
  });

  it("reads a seed-exact WAL exactly as seed 001 lays it out (no extension file needed)", async () => {
    const dir = join(root, "exact");
    const wal = await Wal.open(dir, { log: quiet, segmentBytes: 0 });
    for (let k = 1; k <= 7; k++) await wal.append({ k });
    await wal.close();
    expect((await readdir(dir)).sort()).toEqual(["telemetry.safe_seq", "telemetry.wal"]);
    const { code, report } = verifyPy(dir);
    expect(code).toBe(0);
    expect(report).toMatchObject({ pass: true, layout: "seed-exact", fail_hard: null, wal: { frames: 7, safe_seq: 7, max_seq: 7, base: 0, segments: [] } });
  });
});
