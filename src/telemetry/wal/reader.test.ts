import { appendFile, mkdtemp, rename, rm, stat, unlink, writeFile, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Wal, WalFailHard, encodeFrame, encodeSafeSeq, nodeWalFs, walPaths } from "./index.js";
import { BASE_FILE, readSegmentLayout, segmentName } from "./segments.js";
import { inspectWalImage } from "./verify.js";
import type { Segment } from "./segments.js";
import { WalFileReader } from "./reader.js";
import { walSource } from "../exporter/source.js";

const silent = { warn: () => undefined, error: () => undefined };
const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "exporter-reader-"));
  dirs.push(d);
  return d;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function collect(r: WalFileReader, from: number, to: number): Promise<number[]> {
  const out: number[] = [];
  for await (const page of r.scan(from, to)) out.push(...page.map((e) => e.seq));
  return out;
}

describe("WalFileReader (read-only, streaming)", () => {
  it("yields exactly what the writer committed, from any seq, with frames larger than its buffer", async () => {
    const dir = await tmp();
    const wal = await Wal.open(dir, { log: silent });
    const events = Array.from({ length: 300 }, (_, i) => ({ i, pad: "x".repeat((i * 37) % 500) }));
    await Promise.all(events.map((e) => wal.append(e)));
    const reader = new WalFileReader(dir, { chunkBytes: 128, stride: 7 });
    expect(await reader.committed()).toBe(300);
    for (const [from, to] of [[1, 300], [150, 160], [299, 300], [8, 8], [1, 1], [201, 200]] as const) {
      const got: unknown[] = [];
      for await (const page of reader.scan(from, to)) got.push(...page);
      const want = (await wal.readFrom(from, Math.max(0, to - from + 1))).map((e) => ({ ...e, bytes: Buffer.byteLength(JSON.stringify(e)) }));
      expect(got, `${from}..${to}`).toEqual(want);
    }
    const odd: number[] = [];
    for await (const page of reader.scan(1, 300, { skip: (seq) => seq % 2 === 0 })) {
      expect(page.length).toBeLessThanOrEqual(512);
      odd.push(...page.map((e) => e.seq));
    }
    expect(odd).toEqual(Array.from({ length: 150 }, (_, i) => 2 * i + 1));
    await wal.close();
  });

  it("reads only up to the safe point, never the frames a writer has not committed yet, and never modifies the files", async () => {
    const dir = await tmp();
    const wal = await Wal.open(dir, { log: silent });
    for (let i = 0; i < 5; i++) await wal.append({ i });
    await wal.close();
    // Phantom frames beyond safe_seq (the S3 window: WAL fsynced, safe point not yet advanced).
    await appendFile(walPaths(dir).wal, Buffer.concat([encodeFrame({ seq: 6, event: { phantom: true } }), Buffer.from([0, 0, 1])]));
    const before = await readFile(walPaths(dir).wal);
    const reader = new WalFileReader(dir, { chunkBytes: 64 });
    const committed = await reader.committed();
    expect(committed).toBe(5);
    expect(await collect(reader, 1, committed)).toEqual([1, 2, 3, 4, 5]);
    expect(await readFile(walPaths(dir).wal)).toEqual(before);
  });

  it("follows a live writer: each scan up to the safe point it read is complete", async () => {
    const dir = await tmp();
    const wal = await Wal.open(dir, { log: silent });
    const reader = new WalFileReader(dir, { chunkBytes: 256, stride: 16 });
    const writing = (async () => {
      for (let i = 0; i < 40; i++) await Promise.all(Array.from({ length: 10 }, (_, k) => wal.append({ i, k, pad: "y".repeat(k * 13) })));
    })();
    let seen = 0;
    while (seen < 400) {
      const committed = await reader.committed();
      const got = await collect(reader, seen + 1, committed);
      expect(got).toEqual(Array.from({ length: committed - seen }, (_, j) => seen + 1 + j));
      seen = committed;
      await new Promise((r) => setImmediate(r));
    }
    await writing;
    await wal.close();
  });

  it("a corrupt committed frame fails hard (WAL_CORRUPT_INVALID_JSON); no safe point means nothing committed", async () => {
    const dir = await tmp();
    expect(await new WalFileReader(dir).committed()).toBe(0);
    const wal = await Wal.open(dir, { log: silent });
    for (let i = 0; i < 3; i++) await wal.append({ i, text: "abcdefgh" });
    await wal.close();
    const bytes = await readFile(walPaths(dir).wal);
    const at = bytes.indexOf("abcdefgh", bytes.indexOf("abcdefgh") + 1);
    bytes[at - 2] = 0x7b; // break the second frame's JSON, keep its length
    await writeFile(walPaths(dir).wal, bytes);
    const size = (await stat(walPaths(dir).wal)).size;
    const err = await collect(new WalFileReader(dir), 1, 3).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WalFailHard);
    expect((err as WalFailHard).code).toBe("WAL_CORRUPT_INVALID_JSON");
    expect((await stat(walPaths(dir).wal)).size).toBe(size);
  });
});

/** a..b as an array. */
function range(a: number, b: number): number[] {
  return Array.from({ length: Math.max(0, b - a + 1) }, (_, i) => a + i);
}

/** A closed WAL with several sealed segments and a non-empty active file holding seqs activeFirst..last. */
async function segmented(dir: string, n: number): Promise<{ sealed: Segment[]; activeFirst: number; last: number }> {
  let last = 0;
  for (let count = n; count > 0; count = 1) {
    // A seal runs after the append that fills the segment resolves: read the layout only once the WAL is closed.
    const wal = await Wal.open(dir, { log: silent, segmentBytes: 200 });
    for (let i = 0; i < count; i++) last = await wal.append({ pad: "s".repeat(last % 7) });
    await wal.close();
    const { retained, activeFirst } = await readSegmentLayout(nodeWalFs, dir);
    if (activeFirst <= last) return { sealed: retained, activeFirst, last };
  }
  throw new Error("unreachable");
}

describe("WalFileReader across segments", () => {
  it("reads any range across several sealed segments and the active file, from its per-file index too", async () => {
    const dir = await tmp();
    const { sealed, activeFirst } = await segmented(dir, 100);
    expect(sealed.length).toBeGreaterThan(3);
    expect(activeFirst).toBeLessThanOrEqual(100);
    const reader = new WalFileReader(dir, { chunkBytes: 64, stride: 3 });
    expect(await reader.committed()).toBe(100);
    const boundary = sealed[1]?.last ?? 0;
    const wal = await Wal.open(dir, { log: silent, segmentBytes: 200 });
    for (const [from, to] of [[1, 100], [boundary, boundary + 1], [activeFirst - 1, 100], [5, 5], [60, 97], [1, 100], [100, 100]] as const) {
      const got: unknown[] = [];
      for await (const page of reader.scan(from, to)) got.push(...page);
      const want = (await wal.readFrom(from, to - from + 1)).map((e) => ({ ...e, bytes: Buffer.byteLength(JSON.stringify(e)) }));
      expect(got, `${from}..${to}`).toEqual(want);
    }
    const odd: number[] = [];
    for await (const page of reader.scan(1, 100, { skip: (seq) => seq % 2 === 0 })) odd.push(...page.map((e) => e.seq));
    expect(odd).toEqual(range(1, 100).filter((s) => s % 2 === 1));
    await wal.close();
  });

  it("after reclamation starts at base + 1, silently; a range wholly reclaimed is empty", async () => {
    const dir = await tmp();
    const wal = await Wal.open(dir, { log: silent, segmentBytes: 200 });
    for (let i = 1; i <= 60; i++) await wal.append({ i });
    const { base } = await wal.reclaim(40);
    expect(base).toBeGreaterThan(0);
    expect(base).toBeLessThanOrEqual(40);
    const reader = new WalFileReader(dir, { chunkBytes: 64, stride: 4 });
    expect(await collect(reader, 1, 60)).toEqual(range(base + 1, 60));
    expect(await collect(reader, 1, base)).toEqual([]);
    const src: number[] = [];
    for await (const page of walSource(wal, 7).scan(1, base + 3)) src.push(...page.map((e) => e.seq));
    expect(src).toEqual(range(base + 1, base + 3));
    await wal.close();
  });

  it("the writer sealing between the listing and the open is a stale view, not lost data", async () => {
    for (const createNext of [true, false]) {
      const dir = await tmp();
      const { activeFirst, last } = await segmented(dir, 50);
      let staged = 0;
      const reader = new WalFileReader(dir, {
        chunkBytes: 64,
        beforeOpen: async (name) => {
          if (name !== "telemetry.wal" || staged++ > 0) return;
          // What Wal#seal does: rename the active file to its sealed name, then create an empty
          // active file (or not yet: the writer is between the two steps).
          await rename(walPaths(dir).wal, join(dir, segmentName(activeFirst, last)));
          if (createNext) await writeFile(walPaths(dir).wal, new Uint8Array(0));
        },
      });
      expect(await collect(reader, 1, last), `createNext=${createNext}`).toEqual(range(1, last));
      expect(staged).toBe(1);
    }
  });

  it("a sealed segment reclaimed between the listing and the open: continues from the new base + 1", async () => {
    const dir = await tmp();
    const { sealed, last } = await segmented(dir, 50);
    const [s0, s1] = sealed;
    if (!s0 || !s1) throw new Error("expected two sealed segments");
    let staged = false;
    const reader = new WalFileReader(dir, {
      beforeOpen: async (name) => {
        if (name !== s0.name || staged) return;
        staged = true;
        // What Wal#reclaim does: base first, then unlink.
        await writeFile(join(dir, BASE_FILE), encodeSafeSeq(s1.last));
        await unlink(join(dir, s0.name));
        await unlink(join(dir, s1.name));
      },
    });
    expect(await collect(reader, 1, last)).toEqual(range(s1.last + 1, last));
    expect(staged).toBe(true);
  });

  it("stays exact next to a writer that seals and reclaims all the time", async () => {
    const dir = await tmp();
    let confirmed = 0;
    const wal = await Wal.open(dir, { log: silent, segmentBytes: 120, maxBatch: 3, confirmed: () => Promise.resolve(confirmed) });
    const tail = new WalFileReader(dir, { chunkBytes: 48, stride: 2 });
    const full = new WalFileReader(dir, { chunkBytes: 48, stride: 2 });
    const total = 600;
    const writing = (async () => {
      for (let i = 0; i < total / 4; i++) await Promise.all(Array.from({ length: 4 }, (_, k) => wal.append({ i, k, pad: "w".repeat((i + k) % 11) })));
    })();
    try {
      let seen = 0;
      let scans = 0;
      while (seen < total) {
        const committed = await tail.committed();
        // Above the confirmed position nothing is reclaimed: exactly from..committed.
        const from = Math.max(1, seen - 5);
        expect(await collect(tail, from, committed)).toEqual(range(from, committed));
        // From 1, segments are reclaimed under the scan: seqs ≤ confirmed may be left out (at the start
        // or after a segment that vanished), nothing above it, and never a seq twice or out of order.
        const base = await readBase(dir);
        const all = await collect(full, 1, committed);
        expect(all[0] ?? committed + 1).toBeGreaterThan(base);
        expect(all.filter((s) => s > confirmed)).toEqual(range(confirmed + 1, committed));
        expect(all).toEqual([...new Set(all)].sort((a, b) => a - b));
        seen = committed;
        confirmed = Math.max(0, seen - 20);
        scans++;
      }
      expect(scans).toBeGreaterThan(3);
      expect(wal.base).toBeGreaterThan(0);
    } finally {
      await writing;
      await wal.close();
    }
  });

  it("a truncated sealed segment fails hard (SEGMENT_INVALID, naming the segment); so do extra bytes", async () => {
    const dir = await tmp();
    const { sealed, last } = await segmented(dir, 40);
    const seg = sealed[1];
    if (!seg) throw new Error("expected two sealed segments");
    const path = join(dir, seg.name);
    const intact = await readFile(path);
    await writeFile(path, intact.subarray(0, intact.length - 3));
    const err = await collect(new WalFileReader(dir), 1, last).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WalFailHard);
    expect((err as WalFailHard).code).toBe("SEGMENT_INVALID");
    expect((err as WalFailHard).message).toContain(seg.name);
    expect((err as WalFailHard).message).toContain("truncated");
    // Entries before the damage are still readable; the damage is only reported when read.
    expect(await collect(new WalFileReader(dir), 1, seg.first - 1)).toEqual(range(1, seg.first - 1));
    // A frame more than the name says is just as wrong.
    await writeFile(path, Buffer.concat([intact, encodeFrame({ seq: seg.last + 1, event: {} })]));
    const extra = await collect(new WalFileReader(dir), 1, last).catch((e: unknown) => e);
    expect((extra as WalFailHard).code).toBe("SEGMENT_INVALID");
    expect((extra as WalFailHard).message).toContain("after its last frame");
  });

  it("a file that stays missing fails hard after the retries: a broken chain, or the active file the safe point needs", async () => {
    const dir = await tmp();
    const { sealed, last } = await segmented(dir, 40);
    const mid = sealed[1];
    if (!mid) throw new Error("expected two sealed segments");
    await unlink(join(dir, mid.name));
    const gap = await collect(new WalFileReader(dir), 1, last).catch((e: unknown) => e);
    expect(gap).toBeInstanceOf(WalFailHard);
    expect((gap as WalFailHard).code).toBe("SEQ_GAP");

    const dir2 = await tmp();
    const { activeFirst, last: last2 } = await segmented(dir2, 40);
    await unlink(walPaths(dir2).wal);
    let opens = 0;
    const reader = new WalFileReader(dir2, { beforeOpen: () => void opens++ });
    const missing = await collect(reader, activeFirst, last2).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(WalFailHard);
    expect((missing as WalFailHard).code).toBe("SAFESEQ_NOT_FOUND");
    expect(opens).toBe(6); // the first look and five retries
    expect(await collect(reader, 1, activeFirst - 1)).toEqual(range(1, activeFirst - 1));
  });
});

async function readBase(dir: string): Promise<number> {
  const raw = await readFile(join(dir, BASE_FILE)).catch(() => undefined);
  return raw ? Number(raw.readBigUInt64LE(0)) : 0;
}

describe("WalFileReader.inspect (behind wal inspect, wal verify and readCommitted)", () => {
  it("walks each file in chunks of any size and reports exactly what a whole-image inspection does, torn tail and phantoms included", async () => {
    const dir = await tmp();
    const { sealed, last } = await segmented(dir, 40);
    expect(sealed.length).toBeGreaterThan(1);
    const big = encodeFrame({ seq: last + 1, event: { phantom: "p".repeat(300) } });
    await appendFile(walPaths(dir).wal, Buffer.concat([big, big.subarray(0, 9)]));
    const whole = inspectWalImage({
      files: [...(await Promise.all(sealed.map(async (s) => ({ data: await readFile(s.path), segment: { name: s.name, first: s.first, last: s.last, sha256: s.sha256 } })))), { data: await readFile(walPaths(dir).wal) }],
      safeSeqBytes: await readFile(walPaths(dir).safeSeq),
      base: 0,
    });
    expect(whole.torn_tail_bytes).toBe(9);
    expect(whole.violations.map((v) => v.code)).toEqual(["PHANTOM_BEYOND_SAFESEQ"]);
    for (const chunkBytes of [1, 3, 64, 1 << 20]) expect(await new WalFileReader(dir, { chunkBytes }).inspect(), `chunkBytes=${chunkBytes}`).toEqual(whole);
  });

  it("a flipped byte in a sealed segment is caught by its SHA-256 when read in chunks too", async () => {
    const dir = await tmp();
    const { sealed } = await segmented(dir, 40);
    const victim = sealed[0]?.path ?? "";
    const bytes = await readFile(victim);
    const at = bytes.indexOf(Buffer.from('"pad":"s'));
    expect(at).toBeGreaterThan(0);
    bytes[at + 7] = "t".charCodeAt(0); // still valid JSON, same seq: only the digest can tell
    await writeFile(victim, bytes);
    const got = await new WalFileReader(dir, { chunkBytes: 5 }).inspect();
    expect(got.fail_hard).toBe("SEGMENT_INVALID");
    expect(got.violations[0]?.msg).toContain("SHA-256");
  });
});
