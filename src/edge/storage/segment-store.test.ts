import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile, appendFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PowerLossFs } from "../../../test/helpers/power-loss-fs.js";
import { EdgeError } from "../errors.js";
import type { WalFs } from "../../telemetry/index.js";
import type { SegmentStore } from "../types.js";
import { STORE_BLOCK_BYTES, openSegmentStore, segmentIdOf } from "./index.js";

const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");
const bytesOf = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);
const clock = { now: () => Date.parse("2026-01-02T03:04:05Z") };
/** One block: what the smallest segment costs under the ceiling. */
const B = STORE_BLOCK_BYTES;
/** A roomy ceiling for the tests that are not about it. */
const ROOMY = 16 * B;
/** Our own statement of the charging rule (docs/segment-store.md): whole blocks, at least one. */
const cost = (size: number): number => Math.max(B, Math.ceil(size / B) * B);

/** The file system's methods, bound (a class instance's methods do not survive a spread). */
function bindAll(fs: PowerLossFs): WalFs {
  return {
    openFile: (p) => fs.openFile(p), openRead: (p) => fs.openRead(p), readFile: (p) => fs.readFile(p), writeFileSynced: (p, d) => fs.writeFileSynced(p, d),
    rename: (a, b) => fs.rename(a, b), unlink: (p) => fs.unlink(p), exists: (p) => fs.exists(p), fileSize: (p) => fs.fileSize(p),
    list: (d) => fs.list(d), fsyncDir: (d) => fs.fsyncDir(d), mkdirp: (d) => fs.mkdirp(d),
  };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof EdgeError) return e.code;
    throw e;
  }
  return "NO_ERROR";
}

/** Bytes of the segment files actually on disk, by our own reading of the directory: sizes, charged costs, and the blocks the file system allocated. */
async function diskBytes(dir: string): Promise<{ bytes: number; charged: number; allocated: number; files: string[] }> {
  const files = (await readdir(dir)).filter((n) => /^[0-9a-f]{64}\.(data|release)$/.test(n)).sort();
  let bytes = 0;
  let charged = 0;
  let allocated = 0;
  for (const f of files) {
    const st = await stat(join(dir, f));
    bytes += st.size;
    charged += cost(st.size);
    allocated += st.blocks * 512;
  }
  return { bytes, charged, allocated, files };
}

function reconcile(store: SegmentStore, putBytes: number, disk: { bytes: number; charged: number; allocated: number; files: string[] }): void {
  const evicted = store.evictions().reduce((s, r) => s + r.bytes, 0);
  expect(store.usage().used_bytes).toBe(disk.bytes);
  expect(store.usage().disk_bytes).toBe(disk.charged);
  // What the file system really allocated is within what the ceiling charged.
  expect(disk.allocated).toBeLessThanOrEqual(store.usage().disk_bytes);
  expect(store.usage().disk_bytes).toBeLessThanOrEqual(store.usage().ceiling_bytes);
  expect(putBytes - evicted).toBe(disk.bytes);
  expect(store.usage().segments).toBe(disk.files.length);
}

describe("segment store (src/edge/storage)", () => {
  let dir: string;
  beforeEach(async () => {
    dir = join(await mkdtemp(join(tmpdir(), "segstore-")), "edge", "segments");
  });
  afterEach(async () => {
    await rm(join(dir, "..", ".."), { recursive: true, force: true });
  });

  it("stores a segment under the SHA-256 of its bytes, with its kind, and returns the exact bytes", async () => {
    const store = await openSegmentStore({ dir, ceilingBytes: ROOMY, clock });
    const b = new TextEncoder().encode("hello segment");
    const r = await store.put(b, "release");
    expect(r).toEqual({ info: { id: sha(b), size: b.byteLength, kind: "release" }, created: true, evicted: [] });
    expect(segmentIdOf(b)).toBe(sha(b));
    expect(await readdir(dir)).toContain(`${sha(b)}.release`);
    expect(Buffer.from(await store.get(sha(b))).equals(Buffer.from(b))).toBe(true);
    expect(store.has(sha(b))).toBe(true);
    expect(store.info(sha(b))).toEqual({ id: sha(b), size: b.byteLength, kind: "release" });
    const again = await openSegmentStore({ dir, ceilingBytes: ROOMY, clock });
    expect(again.info(sha(b))).toEqual({ id: sha(b), size: b.byteLength, kind: "release" });
    expect(again.list()).toEqual([{ id: sha(b), size: b.byteLength, kind: "release" }]);
  });

  it("is idempotent: the same bytes again are not written twice (created: false)", async () => {
    const store = await openSegmentStore({ dir, ceilingBytes: ROOMY, clock });
    const b = bytesOf(100, 7);
    expect((await store.put(b, "data")).created).toBe(true);
    expect((await store.put(b, "data")).created).toBe(false);
    expect(store.usage()).toEqual({ used_bytes: 100, disk_bytes: B, ceiling_bytes: ROOMY, segments: 1 });
  });

  it("copies the caller's bytes: mutating the buffer after put does not change what is stored", async () => {
    const store = await openSegmentStore({ dir, ceilingBytes: ROOMY, clock });
    const b = bytesOf(64, 1);
    const p = store.put(b, "data");
    b.fill(2);
    const { info } = await p;
    expect(info.id).toBe(sha(bytesOf(64, 1)));
    expect(Buffer.from(await store.get(info.id)).equals(Buffer.from(bytesOf(64, 1)))).toBe(true);
  });

  it("answers SEGMENT_MISSING for an absent segment and for anything that is not a segment id (no path is ever built from it)", async () => {
    const store = await openSegmentStore({ dir, ceilingBytes: ROOMY, clock });
    expect(await codeOf(store.get("a".repeat(64)))).toBe("SEGMENT_MISSING");
    for (const bad of ["../../etc/passwd", "A".repeat(64), "a".repeat(63), `${"a".repeat(64)}/x`, `${"a".repeat(64)}.data`, ""]) {
      expect(await codeOf(store.get(bad)), bad).toBe("SEGMENT_MISSING");
      expect(store.has(bad)).toBe(false);
    }
  });

  it("enforces the ceiling before writing: evicts least-recently-used evictable segments, records each eviction durably", async () => {
    const store = await openSegmentStore({ dir, ceilingBytes: 3 * B, clock });
    const a = bytesOf(B, 1), b = bytesOf(B - 1, 2), c = bytesOf(1, 3), d = bytesOf(B + 1, 4); // d costs two blocks
    for (const x of [a, b, c]) await store.put(x, "data");
    await store.get(sha(a)); // a is now the most recently used; b the least
    const r = await store.put(d, "data", () => true);
    expect(r.evicted.map((e) => e.id)).toEqual([sha(b), sha(c)]);
    expect(r.evicted[0]).toEqual({ id: sha(b), bytes: B - 1, reason: "lru_ceiling", at: "2026-01-02T03:04:05.000Z" });
    expect(store.has(sha(a)) && store.has(sha(d)) && !store.has(sha(b)) && !store.has(sha(c))).toBe(true);
    expect(await codeOf(store.get(sha(b)))).toBe("SEGMENT_MISSING");
    reconcile(store, 3 * B + 1, await diskBytes(dir));
    const reopened = await openSegmentStore({ dir, ceilingBytes: 3 * B, clock });
    expect(reopened.evictions()).toEqual(store.evictions());
    reconcile(reopened, 3 * B + 1, await diskBytes(dir));
  });

  it("a put also counts as use: the segment put last is evicted last", async () => {
    const store = await openSegmentStore({ dir, ceilingBytes: 2 * B, clock });
    const a = bytesOf(100, 1), b = bytesOf(100, 2);
    await store.put(a, "data");
    await store.put(b, "data");
    await store.put(a, "data"); // touches a
    const r = await store.put(bytesOf(100, 3), "data", () => true);
    expect(r.evicted.map((e) => e.id)).toEqual([sha(b)]);
  });

  it("never evicts a segment the caller did not allow, and evicts nothing when the whole need cannot be met", async () => {
    const store = await openSegmentStore({ dir, ceilingBytes: 3 * B, clock });
    const a = bytesOf(100, 1), b = bytesOf(100, 2), c = bytesOf(100, 3);
    for (const x of [a, b, c]) await store.put(x, "data");
    const allowed = new Set([sha(a)]);
    const err = await store.put(bytesOf(2 * B + 1, 9), "data", (id) => allowed.has(id)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EdgeError);
    expect((err as EdgeError).code).toBe("STORAGE_CEILING_EXCEEDED");
    expect((err as EdgeError).details).toMatchObject({ used_bytes: 300, disk_bytes: 3 * B, ceiling_bytes: 3 * B, evictable_bytes: B, size: 2 * B + 1, disk_cost: 3 * B });
    expect(store.evictions()).toEqual([]);
    expect(store.list().map((s) => s.id).sort()).toEqual([sha(a), sha(b), sha(c)].sort());
    // Only allowed ones go, even when others are older.
    const r = await store.put(bytesOf(50, 8), "data", (id) => id === sha(c));
    expect(r.evicted.map((e) => e.id)).toEqual([sha(c)]);
    reconcile(store, 350, await diskBytes(dir));
    expect((await readdir(dir)).filter((n) => n.startsWith("."))).toEqual([]);
  });

  it("refuses a segment larger than the ceiling without evicting anything", async () => {
    const store = await openSegmentStore({ dir, ceilingBytes: B, clock });
    await store.put(bytesOf(10, 1), "data");
    expect(await codeOf(store.put(bytesOf(B + 1, 2), "data", () => true))).toBe("STORAGE_CEILING_EXCEEDED");
    expect(store.evictions()).toEqual([]);
    expect(store.usage().segments).toBe(1);
  });

  it("remove() records the caller's reason; undefined when absent", async () => {
    const store = await openSegmentStore({ dir, ceilingBytes: ROOMY, clock });
    const { info } = await store.put(bytesOf(10, 1), "data");
    expect(await store.remove(info.id, "purged")).toEqual({ id: info.id, bytes: 10, reason: "purged", at: "2026-01-02T03:04:05.000Z" });
    expect(await store.remove(info.id, "purged")).toBeUndefined();
    // A reason the log cannot read back is refused before anything is written.
    const other = (await store.put(bytesOf(5, 9), "data")).info;
    await expect(store.remove(other.id, "gone" as unknown as "purged")).rejects.toThrow(/unknown eviction reason/);
    await store.remove(other.id, "purged");
    expect(store.usage().used_bytes).toBe(0);
    const lines = (await readFile(join(dir, "evictions.log"), "utf8")).trim().split("\n");
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([
      { seq: 1, id: info.id, kind: "data", bytes: 10, reason: "purged", at: "2026-01-02T03:04:05.000Z" },
      { seq: 2, id: other.id, kind: "data", bytes: 5, reason: "purged", at: "2026-01-02T03:04:05.000Z" },
    ]);
  });

  it("get() re-hashes: a segment whose bytes changed on disk is SEGMENT_CORRUPT, removed with a `corrupt` record, then missing", async () => {
    const store = await openSegmentStore({ dir, ceilingBytes: ROOMY, clock });
    const { info } = await store.put(bytesOf(10, 1), "data");
    await writeFile(join(dir, `${info.id}.data`), bytesOf(10, 2));
    expect(await codeOf(store.get(info.id))).toBe("SEGMENT_CORRUPT");
    expect(await codeOf(store.get(info.id))).toBe("SEGMENT_MISSING");
    expect(store.evictions()).toEqual([{ id: info.id, bytes: 10, reason: "corrupt", at: "2026-01-02T03:04:05.000Z" }]);
    reconcile(store, 10, await diskBytes(dir));
  });

  it("open recovers from names and sizes: removes put temps, leaves unrelated files, recomputes usage; verify() then finds and removes a tampered segment", async () => {
    const store = await openSegmentStore({ dir, ceilingBytes: ROOMY, clock });
    const good = (await store.put(bytesOf(30, 1), "data")).info;
    const bad = (await store.put(bytesOf(20, 2), "release")).info;
    await writeFile(join(dir, `${bad.id}.release`), bytesOf(25, 3)); // tampered, and longer
    await writeFile(join(dir, `.tmp-${"b".repeat(64)}.data`), bytesOf(5, 5));
    await writeFile(join(dir, "unrelated.txt"), "left alone");
    const again = await openSegmentStore({ dir, ceilingBytes: ROOMY, clock });
    // Open did not read contents: the tampered file is counted by its size until something reads it.
    expect(again.usage()).toEqual({ used_bytes: 55, disk_bytes: 2 * B, ceiling_bytes: ROOMY, segments: 2 });
    expect(again.evictions()).toEqual([]);
    expect(await again.verify()).toEqual({ checked: 2, bytes: 55, removed: [{ id: bad.id, bytes: 25, reason: "corrupt", at: "2026-01-02T03:04:05.000Z" }] });
    expect(again.list()).toEqual([good]);
    expect(again.usage()).toEqual({ used_bytes: 30, disk_bytes: B, ceiling_bytes: ROOMY, segments: 1 });
    expect((await readdir(dir)).sort()).toEqual([`${good.id}.data`, "evictions.log", "unrelated.txt"].sort());
    expect(await again.verify()).toEqual({ checked: 1, bytes: 30, removed: [] });
  });

  it("open reads no segment's contents: start-up cost is a directory listing and one size per file, not a re-hash of the store", async () => {
    const fs = new PowerLossFs();
    await fs.mkdirDurable("/state");
    const store = await openSegmentStore({ dir: "/state/edge/segments", ceilingBytes: ROOMY, fs, clock });
    for (let i = 0; i < 5; i++) await store.put(bytesOf(100 + i, i), "data");
    const reads: string[] = [];
    const counting: WalFs = { ...bindAll(fs), readFile: (p) => { reads.push(p); return fs.readFile(p); }, openRead: (p) => { reads.push(p); return fs.openRead(p); } };
    const again = await openSegmentStore({ dir: "/state/edge/segments", ceilingBytes: ROOMY, fs: counting, clock });
    expect(reads.filter((p) => !p.endsWith("/evictions.log"))).toEqual([]);
    expect(again.usage()).toEqual({ used_bytes: 510, disk_bytes: 5 * B, ceiling_bytes: ROOMY, segments: 5 });
    // Reads still verify what they serve, and a scrub reads everything.
    expect(sha(await again.get(sha(bytesOf(100, 0))))).toBe(sha(bytesOf(100, 0)));
    reads.length = 0;
    expect((await again.verify()).checked).toBe(5);
    expect(reads).toHaveLength(5);
  });

  it("verify() records a segment whose file vanished under the store (removed by hand) as `corrupt`, so the accounting stays exact", async () => {
    const store = await openSegmentStore({ dir, ceilingBytes: ROOMY, clock });
    const { info } = await store.put(bytesOf(10, 1), "data");
    await rm(join(dir, `${info.id}.data`));
    expect(await store.verify()).toEqual({ checked: 1, bytes: 0, removed: [{ id: info.id, bytes: 10, reason: "corrupt", at: "2026-01-02T03:04:05.000Z" }] });
    expect(store.usage()).toEqual({ used_bytes: 0, disk_bytes: 0, ceiling_bytes: ROOMY, segments: 0 });
    expect((await openSegmentStore({ dir, ceilingBytes: ROOMY, clock })).evictions()).toEqual(store.evictions());
  });

  it("open cuts a torn tail off the eviction log and keeps every complete record", async () => {
    const store = await openSegmentStore({ dir, ceilingBytes: ROOMY, clock });
    const { info } = await store.put(bytesOf(10, 1), "data");
    await store.remove(info.id, "purged");
    await appendFile(join(dir, "evictions.log"), '{"seq":2,"id":"');
    const again = await openSegmentStore({ dir, ceilingBytes: ROOMY, clock });
    expect(again.evictions()).toHaveLength(1);
    const { info: i2 } = await again.put(bytesOf(10, 2), "data");
    await again.remove(i2.id, "deadletter_retention");
    const third = await openSegmentStore({ dir, ceilingBytes: ROOMY, clock });
    expect(third.evictions().map((r) => r.reason)).toEqual(["purged", "deadletter_retention"]);
  });

  it("a damaged line in the middle of the eviction log (disk damage, not a crash) loses only that record", async () => {
    const store = await openSegmentStore({ dir, ceilingBytes: ROOMY, clock });
    const ids: string[] = [];
    for (const n of [1, 2, 3]) ids.push((await store.put(bytesOf(10, n), "data")).info.id);
    for (const id of ids) await store.remove(id, "purged");
    const path = join(dir, "evictions.log");
    const lines = (await readFile(path, "utf8")).split("\n");
    lines[1] = (lines[1] ?? "").replace('"seq":2', '"seq":"x"');
    await writeFile(path, lines.join("\n"));
    const again = await openSegmentStore({ dir, ceilingBytes: ROOMY, clock });
    expect(again.evictions().map((r) => r.id)).toEqual([ids[0], ids[2]]);
    const { info } = await again.put(bytesOf(10, 4), "data");
    await again.remove(info.id, "purged");
    const third = await openSegmentStore({ dir, ceilingBytes: ROOMY, clock });
    expect(third.evictions().map((r) => r.id)).toEqual([ids[0], ids[2], info.id]);
    expect((await readFile(path, "utf8")).trim().split("\n").map((l) => (JSON.parse(l) as { seq: unknown }).seq)).toEqual([1, "x", 3, 4]);
  });

  it("open finishes an interrupted eviction whose record is durable, and rolls back one whose record is not", async () => {
    const store = await openSegmentStore({ dir, ceilingBytes: ROOMY, clock });
    const a = (await store.put(bytesOf(10, 1), "data")).info;
    const b = (await store.put(bytesOf(10, 2), "data")).info;
    await store.remove(a.id, "purged"); // record seq 1
    // Simulate: a's eviction stopped after its record (file still under its evict name) …
    await writeFile(join(dir, `.evict-1.${a.id}.data`), bytesOf(10, 1));
    // … and b's stopped before its record (seq 2 was never written).
    const { rename } = await import("node:fs/promises");
    await rename(join(dir, `${b.id}.data`), join(dir, `.evict-2.${b.id}.data`));
    const again = await openSegmentStore({ dir, ceilingBytes: ROOMY, clock });
    expect(again.list()).toEqual([b]);
    expect(again.evictions().map((r) => r.id)).toEqual([a.id]);
    expect((await readdir(dir)).sort()).toEqual([`${b.id}.data`, "evictions.log"].sort());
  });

  it("rejects a non-positive ceiling", async () => {
    await expect(openSegmentStore({ dir, ceilingBytes: 0 })).rejects.toThrow(/ceilingBytes/);
  });

  it("a failed fsync of an eviction record rolls the eviction back completely: the unsynced line cannot come back after a process death", async () => {
    const fs = new PowerLossFs();
    await fs.mkdirDurable("/state");
    let failNextLogSync = false;
    // The real file system model, except that the eviction log's next fsync reports EIO (its bytes stay in the page cache).
    const faulty: WalFs = {
      ...bindAll(fs),
      openFile: async (path) => {
        const f = await fs.openFile(path);
        if (!path.endsWith("/evictions.log")) return f;
        return {
          read: (p, l) => f.read(p, l), write: (d, p) => f.write(d, p), truncate: (l) => f.truncate(l), size: () => f.size(), close: () => f.close(),
          sync: async () => {
            if (failNextLogSync) {
              failNextLogSync = false;
              throw Object.assign(new Error("EIO: simulated fsync failure"), { code: "EIO" });
            }
            await f.sync();
          },
        };
      },
    };
    const store = await openSegmentStore({ dir: "/state/edge/segments", ceilingBytes: ROOMY, fs: faulty, clock });
    const { info } = await store.put(bytesOf(40, 1), "data");
    failNextLogSync = true;
    await expect(store.remove(info.id, "purged")).rejects.toThrow(/EIO/);
    expect(store.has(info.id)).toBe(true);
    expect(store.evictions()).toEqual([]);
    // The process dies; the kernel keeps whatever the failed append left in its cache.
    const reopened = await openSegmentStore({ dir: "/state/edge/segments", ceilingBytes: ROOMY, fs: fs.restart(), clock });
    expect(reopened.evictions()).toEqual([]);
    expect(reopened.usage()).toEqual({ used_bytes: 40, disk_bytes: B, ceiling_bytes: ROOMY, segments: 1 });
    expect(Buffer.from(await reopened.get(info.id)).equals(Buffer.from(bytesOf(40, 1)))).toBe(true);
  });

  it("runs on an injected file system (the power-loss model): every put is durable once it resolves", async () => {
    const fs = new PowerLossFs();
    await fs.mkdirDurable("/state");
    const store = await openSegmentStore({ dir: "/state/edge/segments", ceilingBytes: ROOMY, fs, clock });
    const { info } = await store.put(bytesOf(40, 1), "data");
    const after = fs.crash();
    const reopened = await openSegmentStore({ dir: "/state/edge/segments", ceilingBytes: ROOMY, fs: after, clock });
    expect(Buffer.from(await reopened.get(info.id)).equals(Buffer.from(bytesOf(40, 1)))).toBe(true);
  });
});
