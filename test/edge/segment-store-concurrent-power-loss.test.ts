/**
 * Concurrent puts in the segment store (src/edge/storage): admission is one at
 * a time, the writes (temp → fsync → rename → fsync dir) overlap. Seeded, on
 * the power-loss model of test/helpers/power-loss-fs.ts; the seed is printed,
 * replay with SEGSTORE_CONCURRENT_SEED=<seed>. Each iteration fires batches of
 * 2–8 puts at once (fresh bytes, some repeated inside the batch, random
 * `evictable`) under a small ceiling, cuts power at a random mutating
 * operation, crashes the file system (torn unsynced writes, strict or
 * journaled metadata), reopens and checks:
 *   - every put that resolved is there with its exact bytes, unless an
 *     eviction record names it;
 *   - every listed segment reads back exactly, no `corrupt` record, usage
 *     within the ceiling and equal to the listed sizes;
 *   - while running, concurrent puts never take usage over the ceiling, and
 *     concurrent puts of the same bytes create the segment once.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { EdgeError, STORE_BLOCK_BYTES, diskCost, openSegmentStore } from "../../src/edge/index.js";
import type { SegmentStore } from "../../src/edge/index.js";
import { seededRng } from "../../src/lib/index.js";
import type { Rng } from "../../src/lib/index.js";
import { PowerLossFs, isPowerCut } from "../helpers/power-loss-fs.js";

const ITERATIONS = Number(process.env.SEGSTORE_HARNESS_ITERATIONS ?? 500);
const SEED = process.env.SEGSTORE_CONCURRENT_SEED !== undefined ? Number(process.env.SEGSTORE_CONCURRENT_SEED) >>> 0 : (Date.now() ^ (process.pid << 12)) >>> 0;
const DIR = "/state/edge/segments";
/** Room for five segments: each (1..1500 bytes) costs one block under the ceiling. */
const CEILING = 5 * STORE_BLOCK_BYTES;
const clock = { now: () => Date.parse("2026-06-01T00:00:00Z") };
const int = (rng: Rng, n: number): number => Math.floor(rng() * n);
const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

console.log(`[segment-store-concurrent] seed=${SEED} iterations=${ITERATIONS} (replay: SEGSTORE_CONCURRENT_SEED=${SEED})`);

function randomBytes(rng: Rng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = int(rng, 256);
  return b;
}

const ceilingRefusal = (e: unknown): boolean => e instanceof EdgeError && e.code === "STORAGE_CEILING_EXCEEDED";

/** One batch of concurrent puts; returns the ids whose put resolved. A power cut rejects the rest. */
async function batch(store: SegmentStore, rng: Rng, content: Map<string, Uint8Array>): Promise<{ resolved: string[]; cut: boolean }> {
  const fresh = Array.from({ length: 1 + int(rng, 5) }, () => randomBytes(rng, 1 + int(rng, 1500)));
  const puts = Array.from({ length: 2 + int(rng, 7) }, () => fresh[int(rng, fresh.length)] as Uint8Array);
  for (const b of puts) content.set(sha(b), b);
  const evictAll = rng() < 0.5;
  const results = await Promise.allSettled(puts.map((b) => store.put(b, "data", () => evictAll)));
  const resolved: string[] = [];
  let cut = false;
  const created = new Map<string, number>();
  results.forEach((r, i) => {
    const id = sha(puts[i] as Uint8Array);
    if (r.status === "fulfilled") {
      resolved.push(id);
      if (r.value.created) created.set(id, (created.get(id) ?? 0) + 1);
    } else if (isPowerCut(r.reason)) cut = true;
    else if (!ceilingRefusal(r.reason)) throw r.reason;
  });
  if (!cut) expect(store.usage().disk_bytes).toBeLessThanOrEqual(CEILING);
  if (!cut && !evictAll) {
    // (with evictions allowed, a later put of the batch may evict a segment and a repeat re-create it)
    for (const [id, n] of created) expect(n, `segment ${id} created once by concurrent puts of the same bytes`).toBe(1);
  }
  return { resolved, cut };
}

async function iteration(i: number): Promise<boolean> {
  const rng = seededRng((SEED ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
  let fs = new PowerLossFs({ rng });
  await fs.mkdirDurable("/state");
  const store = await openSegmentStore({ dir: DIR, ceilingBytes: CEILING, fs, clock });
  const content = new Map<string, Uint8Array>();
  const acked = new Set<string>();
  fs.cutPowerAt(1 + int(rng, 120));
  let cut = false;
  for (let n = 0; n < 40 && !cut; n++) {
    const r = await batch(store, rng, content);
    for (const id of r.resolved) acked.add(id);
    cut = r.cut;
  }
  fs.disarm();
  fs = fs.crash({ rng, tornWrites: true, metadata: rng() < 0.5 ? "strict" : "ordered" });
  const after = await openSegmentStore({ dir: DIR, ceilingBytes: CEILING, fs, clock });
  const where = `iteration ${i} (SEGSTORE_CONCURRENT_SEED=${SEED})`;
  const evicted = new Set(after.evictions().map((r) => r.id));
  expect(after.evictions().filter((r) => r.reason === "corrupt"), `${where}: a crash is not corruption`).toEqual([]);
  for (const id of acked) {
    if (evicted.has(id)) continue;
    expect(after.has(id), `${where}: acknowledged segment ${id} lost`).toBe(true);
  }
  let sum = 0;
  let disk = 0;
  for (const s of after.list()) {
    const bytes = await after.get(s.id);
    expect(Buffer.from(bytes).equals(Buffer.from(content.get(s.id) ?? new Uint8Array())), `${where}: ${s.id} reads back exactly`).toBe(true);
    sum += s.size;
    disk += diskCost(s.size);
  }
  expect(after.usage().used_bytes, `${where}: usage = listed bytes`).toBe(sum);
  expect(after.usage().disk_bytes, `${where}: disk usage = listed costs`).toBe(disk);
  expect(disk, `${where}: within the ceiling`).toBeLessThanOrEqual(CEILING);
  const left = (await fs.list(DIR)).filter((n) => n.startsWith(".tmp-") || n.startsWith(".evict-"));
  expect(left, `${where}: no temp or eviction file left`).toEqual([]);
  return cut;
}

describe("segment store: concurrent puts", () => {
  it("puts run concurrently: N puts under a ceiling that fits 3 admit exactly 3, the rest are refused, usage never passes the ceiling", async () => {
    const fs = new PowerLossFs();
    await fs.mkdirDurable("/state");
    const store = await openSegmentStore({ dir: DIR, ceilingBytes: 3 * STORE_BLOCK_BYTES, fs, clock });
    const rng = seededRng(7);
    const bytes = Array.from({ length: 8 }, () => randomBytes(rng, 1000));
    const r = await Promise.allSettled(bytes.map((b) => store.put(b, "data")));
    expect(r.filter((x) => x.status === "fulfilled")).toHaveLength(3);
    expect(r.filter((x) => x.status === "rejected" && ceilingRefusal(x.reason))).toHaveLength(5);
    expect(store.usage()).toEqual({ used_bytes: 3000, disk_bytes: 3 * STORE_BLOCK_BYTES, ceiling_bytes: 3 * STORE_BLOCK_BYTES, segments: 3 });
  });

  it("the same bytes put 6 times at once are written once: one created, five duplicates", async () => {
    const fs = new PowerLossFs();
    await fs.mkdirDurable("/state");
    const store = await openSegmentStore({ dir: DIR, ceilingBytes: 100_000, fs, clock });
    const b = randomBytes(seededRng(9), 4000);
    const r = await Promise.all(Array.from({ length: 6 }, () => store.put(b, "data")));
    expect(r.filter((x) => x.created)).toHaveLength(1);
    expect(store.usage().segments).toBe(1);
  });

  it(`power loss during concurrent puts never loses an acknowledged segment nor serves a torn one (${ITERATIONS} seeded iterations)`, async () => {
    let cuts = 0;
    for (let i = 0; i < ITERATIONS; i++) if (await iteration(i)) cuts++;
    console.log(`[segment-store-concurrent] ${ITERATIONS} iterations: ${cuts} cut during a batch of concurrent puts`);
    expect(cuts).toBeGreaterThan(ITERATIONS / 2);
  }, 300_000);
});
