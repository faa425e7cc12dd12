/**
 * Bounded disk (docs/wal.md "Bounded disk: segments"): sealing, reclamation,
 * recovery across segment boundaries, and each way a segmented directory can
 * be damaged. Crash behaviour is covered by test/telemetry/wal-crash-harness.test.ts,
 * which runs half its iterations with tiny segments and random reclamation.
 */
import { mkdtemp, readdir, readFile, rm, truncate, unlink, writeFile, rename, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Wal, WalFailHard, encodeSafeSeq, inspectWalDir, readCommitted } from "./index.js";
import { parseSegmentName, segmentName } from "./segments.js";
import { nodeWalFs } from "./index.js";
import type { WalFs, WalLogger } from "./index.js";

const quiet: WalLogger = { warn: () => undefined, error: () => undefined };
let dir = "";

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "wal-seg-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fill(n: number, segmentBytes = 200): Promise<Wal> {
  const wal = await Wal.open(dir, { log: quiet, segmentBytes });
  for (let k = 1; k <= n; k++) await wal.append({ k, pad: "x".repeat(40) });
  return wal;
}

const sealedNames = async (): Promise<string[]> => (await readdir(dir)).filter((n) => /^telemetry\.wal\.\d{20}-\d{20}(\.[0-9a-f]{64})?$/.test(n)).sort();

async function failHardCode(): Promise<string> {
  try {
    const w = await Wal.open(dir, { log: quiet, segmentBytes: 200 });
    await w.close();
    return "opened";
  } catch (e) {
    return e instanceof WalFailHard ? e.code : String(e);
  }
}

describe("permissions", () => {
  it("a new WAL directory is 0700 and its files 0600, sealed segments and base included (least privilege)", async () => {
    const sub = join(dir, "node", "telemetry");
    const wal = await Wal.open(sub, { log: quiet, segmentBytes: 200, confirmed: () => Promise.resolve(10) });
    for (let k = 1; k <= 20; k++) await wal.append({ k, pad: "x".repeat(40) });
    await wal.close();
    const mode = async (p: string): Promise<number> => (await stat(p)).mode & 0o777;
    expect(await mode(sub)).toBe(0o700);
    const files = (await readdir(sub)).filter((n) => n.startsWith("telemetry."));
    expect(files).toEqual(expect.arrayContaining(["telemetry.wal", "telemetry.safe_seq", "telemetry.wal.base"]));
    for (const f of files) expect([f, await mode(join(sub, f))]).toEqual([f, 0o600]);
  });
});

describe("sealing", () => {
  it("seals the active segment once it reaches segmentBytes, naming it by its first and last seq; the chain is contiguous", async () => {
    const wal = await fill(20);
    await wal.close();
    const names = await sealedNames();
    expect(names.length).toBeGreaterThanOrEqual(4);
    let expected = 1;
    for (const n of names) {
      const { first, last } = parseSegmentName(n) ?? { first: NaN, last: NaN };
      expect(first).toBe(expected);
      expected = (last ?? 0) + 1;
    }
    // Every sealed segment is covered by the safe point; the active one starts right after the last.
    expect((await stat(join(dir, "telemetry.wal"))).isFile()).toBe(true);
    expect(expected).toBeLessThanOrEqual(21);
  });

  it("reopening reads every entry across the segments; appends continue", async () => {
    await (await fill(20)).close();
    const wal = await Wal.open(dir, { log: quiet, segmentBytes: 200 });
    expect((await wal.readFrom(1)).map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect((await wal.readFrom(7, 5)).map((e) => e.seq)).toEqual([7, 8, 9, 10, 11]);
    expect(await wal.append({ k: 21 })).toBe(21);
    await wal.close();
  });

  it("read-only readers (readCommitted, inspectWalDir) see the same logical WAL and every invariant holds", async () => {
    await (await fill(15)).close();
    const { entries, inspection } = await readCommitted(dir);
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    expect(inspection.fail_hard).toBeNull();
    expect(inspection.segments.length).toBeGreaterThan(0);
    expect(Object.values(inspection.invariants).every((v) => v.pass)).toBe(true);
  });

  it("segmentBytes Infinity keeps the seed's single file", async () => {
    await (await fill(30, Number.POSITIVE_INFINITY)).close();
    expect(await sealedNames()).toEqual([]);
  });
});

describe("reclamation", () => {
  it("deletes sealed segments wholly at or below the confirmed position, writes base first, and never touches the rest", async () => {
    const wal = await fill(20);
    const before = wal.sealedSegments.map((s) => ({ ...s }));
    const confirmed = before[1]?.last ?? 0; // the first two segments are confirmed
    const r = await wal.reclaim(confirmed + 1); // +1: a partly confirmed segment stays
    expect(r.segments).toBe(2);
    expect(r.bytes).toBeGreaterThan(0);
    expect(wal.base).toBe(confirmed);
    expect(await sealedNames()).toEqual(before.slice(2).map((s) => s.name));
    expect(Buffer.from(await readFile(join(dir, "telemetry.wal.base"))).readBigUInt64LE(0)).toBe(BigInt(confirmed));
    expect((await wal.readFrom(1))[0]?.seq).toBe(confirmed + 1);
    await wal.close();
    const again = await Wal.open(dir, { log: quiet, segmentBytes: 200 });
    expect(again.base).toBe(confirmed);
    expect((await again.readFrom(1)).map((e) => e.seq)).toEqual(Array.from({ length: 20 - confirmed }, (_, i) => confirmed + 1 + i));
    const { inspection } = await readCommitted(dir);
    expect(inspection.fail_hard).toBeNull();
    expect(inspection.base).toBe(confirmed);
    await again.close();
  });

  it("a confirmed position beyond the committed seq reclaims only sealed segments, never the active one", async () => {
    const wal = await fill(12);
    await wal.append({ k: 13 }); // the seal after 12's commit is done before 13 commits
    await wal.reclaim(1_000_000);
    expect(wal.sealedSegments).toEqual([]);
    expect(await sealedNames()).toEqual([]);
    expect(wal.lastSeq).toBe(13);
    const rest = await wal.readFrom(1);
    expect(rest[rest.length - 1]?.seq).toBe(13);
    expect(rest[0]?.seq).toBe(wal.base + 1);
    await wal.close();
  });

  it("with a `confirmed` source the WAL reclaims by itself after opening and after every seal", async () => {
    let pos = 0;
    const wal = await Wal.open(dir, { log: quiet, segmentBytes: 200, confirmed: () => Promise.resolve(pos) });
    for (let k = 1; k <= 40; k++) {
      pos = Math.max(0, k - 5); // an exporter five entries behind
      await wal.append({ k, pad: "y".repeat(40) });
    }
    expect(wal.base).toBeGreaterThan(20);
    expect(wal.base).toBeLessThanOrEqual(35);
    expect((await sealedNames()).length).toBeLessThanOrEqual(3);
    await wal.close();
  });

  it("a confirmed position past the committed WAL is stale (another WAL's): nothing is reclaimed", async () => {
    const warnings: string[] = [];
    const wal = await Wal.open(dir, { segmentBytes: 200, confirmed: () => Promise.resolve(1_000), log: { warn: (_o, m) => void warnings.push(m), error: () => undefined } });
    for (let k = 1; k <= 20; k++) await wal.append({ k, pad: "x".repeat(40) });
    expect(wal.base).toBe(0);
    expect(wal.sealedSegments.length).toBeGreaterThan(2);
    expect(warnings.some((m) => m.startsWith("WAL_RECLAIM_SKIPPED"))).toBe(true);
    await wal.close();
  });

  it("recovery finishes a reclamation a crash interrupted (base written, segment not yet unlinked)", async () => {
    const wal = await fill(20);
    const first = wal.sealedSegments[0];
    await wal.close();
    if (!first) throw new Error("no sealed segment");
    await writeFile(join(dir, "telemetry.wal.base"), encodeSafeSeq(first.last));
    const again = await Wal.open(dir, { log: quiet, segmentBytes: 200 });
    expect(again.base).toBe(first.last);
    expect(await sealedNames()).not.toContain(first.name);
    await again.close();
  });

  it("readFrom racing a reclamation of the segment it reads skips to base + 1 instead of failing", async () => {
    // The real file system, except that the next read of a sealed segment waits until released:
    // readFrom picks the segment, the reclamation deletes it meanwhile, then the read runs.
    let hold: Promise<void> | undefined;
    let release = (): void => undefined;
    const fs: WalFs = {
      ...nodeWalFs,
      readFile: async (path) => {
        if (hold && /\.wal\.\d{20}-\d{20}(\.[0-9a-f]{64})?$/.test(path)) {
          const h = hold;
          hold = undefined;
          await h;
        }
        return nodeWalFs.readFile(path);
      },
    };
    const wal = await Wal.open(dir, { log: quiet, segmentBytes: 200, fs, lock: false });
    for (let k = 1; k <= 20; k++) await wal.append({ k, pad: "x".repeat(40) });
    const target = wal.sealedSegments[0]?.last ?? 0;
    hold = new Promise((r) => (release = r));
    const reading = wal.readFrom(1);
    await wal.reclaim(target);
    release();
    const seqs = (await reading).map((e) => e.seq);
    expect(seqs).toEqual(Array.from({ length: 20 - target }, (_, i) => target + 1 + i));
    await wal.close();
  });

  it("readFrom beside appends that seal segments returns the contiguous committed range, never a false corruption", async () => {
    const wal = await Wal.open(dir, { log: quiet, segmentBytes: 150 });
    let done = false;
    const writer = (async () => {
      for (let k = 0; k < 300; k++) await Promise.all([wal.append({ k, pad: "w".repeat(20) }), wal.append({ k, second: true })]);
      done = true;
    })();
    let reads = 0;
    while (!done) {
      const before = wal.lastSeq;
      const seqs = (await wal.readFrom(1)).map((e) => e.seq);
      expect(seqs.length).toBeGreaterThanOrEqual(before);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
      reads++;
      await new Promise((r) => setImmediate(r)); // an empty read settles in microtasks: let the writer's I/O in
    }
    await writer;
    expect(reads).toBeGreaterThan(3);
    expect(wal.sealedSegments.length).toBeGreaterThan(20);
    await wal.close();
  });

  it("refuses a negative segment size (0 is the seed-exact mode, tested in seed-exact.test.ts)", async () => {
    await expect(Wal.open(dir, { log: quiet, segmentBytes: -1 })).rejects.toThrow(RangeError);
  });

  it("a stale base temp file from a killed reclamation is removed; the old base stands", async () => {
    await (await fill(10)).close();
    await writeFile(join(dir, "telemetry.wal.base.tmp"), encodeSafeSeq(5));
    const wal = await Wal.open(dir, { log: quiet });
    expect(wal.base).toBe(0);
    expect((await readdir(dir)).includes("telemetry.wal.base.tmp")).toBe(false);
    await wal.close();
  });
});

describe("damaged segmented directories fail hard with a cause (and inspectWalDir agrees)", () => {
  it("a sealed segment cut short → SEGMENT_INVALID", async () => {
    await (await fill(20)).close();
    const [first] = await sealedNames();
    const path = join(dir, first ?? "");
    await truncate(path, (await stat(path)).size - 3);
    expect(await failHardCode()).toBe("SEGMENT_INVALID");
    expect((await inspectWalDir(dir)).fail_hard).toBe("SEGMENT_INVALID");
  });

  it("a sealed segment whose bytes changed but still parse (a flipped digit) → SEGMENT_INVALID by its SHA-256", async () => {
    await (await fill(20)).close();
    const [first] = await sealedNames();
    expect(parseSegmentName(first ?? "")?.sha256).toMatch(/^[0-9a-f]{64}$/);
    const path = join(dir, first ?? "");
    const text = Buffer.from(await readFile(path)).toString("latin1");
    await writeFile(path, Buffer.from(text.replace('"k":1,', '"k":7,'), "latin1")); // still valid JSON, same seq
    expect(await failHardCode()).toBe("SEGMENT_INVALID");
    expect((await inspectWalDir(dir)).fail_hard).toBe("SEGMENT_INVALID");
  });

  it("a missing middle segment → SEQ_GAP", async () => {
    await (await fill(20)).close();
    const names = await sealedNames();
    await unlink(join(dir, names[1] ?? ""));
    expect(await failHardCode()).toBe("SEQ_GAP");
    expect((await inspectWalDir(dir)).fail_hard).toBe("SEQ_GAP");
  });

  it("a missing first segment without a base → FIRST_SEQ_NOT_ONE (R1 with base 0)", async () => {
    await (await fill(20)).close();
    const [first] = await sealedNames();
    await unlink(join(dir, first ?? ""));
    expect(await failHardCode()).toBe("FIRST_SEQ_NOT_ONE");
    expect((await inspectWalDir(dir)).fail_hard).toBe("FIRST_SEQ_NOT_ONE");
  });

  it("corrupt JSON inside a sealed segment → WAL_CORRUPT_INVALID_JSON", async () => {
    await (await fill(20)).close();
    const [first] = await sealedNames();
    const path = join(dir, first ?? "");
    const bytes = Buffer.from(await readFile(path));
    bytes[6] = 0x7b; // inside the first payload: {"seq → {{seq
    await writeFile(path, bytes);
    expect(await failHardCode()).toBe("WAL_CORRUPT_INVALID_JSON");
    expect((await inspectWalDir(dir)).fail_hard).toBe("WAL_CORRUPT_INVALID_JSON");
  });

  it("a segment renamed to claim more seqs than it holds → SEGMENT_INVALID", async () => {
    await (await fill(20)).close();
    const names = await sealedNames();
    const last = names[names.length - 1] ?? "";
    const { first: f, last: l } = parseSegmentName(last) ?? { first: NaN, last: NaN };
    await rename(join(dir, last), join(dir, segmentName(f ?? 0, (l ?? 0) + 1)));
    expect(await failHardCode()).toBe("SEGMENT_INVALID");
  });

  it("a safe point behind the sealed segments → SEGMENT_INVALID", async () => {
    await (await fill(20)).close();
    await writeFile(join(dir, "telemetry.safe_seq"), encodeSafeSeq(1));
    expect(await failHardCode()).toBe("SEGMENT_INVALID");
  });

  it("a base that is not 16 bytes (or the legacy 8) → WAL_BASE_CORRUPT", async () => {
    await (await fill(20)).close();
    await writeFile(join(dir, "telemetry.wal.base"), Buffer.from([1, 2, 3]));
    expect(await failHardCode()).toBe("WAL_BASE_CORRUPT");
  });

  it("a base whose seq had a bit flipped fails its checksum → WAL_BASE_CORRUPT, never frames silently dropped", async () => {
    const wal = await fill(20);
    await wal.reclaim(10);
    await wal.close();
    const raw = await readFile(join(dir, "telemetry.wal.base"));
    expect(raw.byteLength).toBe(16);
    raw[0] = (raw[0] ?? 0) ^ 4;
    await writeFile(join(dir, "telemetry.wal.base"), raw);
    expect(await failHardCode()).toBe("WAL_BASE_CORRUPT");
    expect((await inspectWalDir(dir)).fail_hard).not.toBeNull();
  });

  it("a legacy 8-byte base (written before the checksum) is still read", async () => {
    const wal = await fill(20);
    const { base } = await wal.reclaim(10);
    await wal.close();
    await writeFile(join(dir, "telemetry.wal.base"), encodeSafeSeq(base));
    const again = await Wal.open(dir, { log: quiet, segmentBytes: 200 });
    expect(again.base).toBe(base);
    await again.close();
  });

  it("a lost safe_seq beside sealed segments is steady state → SAFESEQ_MISSING, never a first run", async () => {
    const wal = await fill(20);
    await wal.reclaim(wal.sealedSegments[0]?.last ?? 0);
    await wal.close();
    await unlink(join(dir, "telemetry.safe_seq"));
    await writeFile(join(dir, "telemetry.wal"), Buffer.alloc(0));
    expect(await failHardCode()).toBe("SAFESEQ_MISSING");
  });

  it("recovery never deletes a sealed segment above base", async () => {
    await (await fill(20)).close();
    const names = await sealedNames();
    await Wal.initialize(dir, { log: quiet });
    expect(await sealedNames()).toEqual(names);
  });
});
