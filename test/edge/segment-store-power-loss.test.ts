/**
 * Power-loss harness for the segment store (src/edge/storage), on the strict
 * POSIX durability model of test/helpers/power-loss-fs.ts. Seeded: the seed is
 * printed; replay with SEGSTORE_HARNESS_SEED=<seed> (and SEGSTORE_HARNESS_ONLY=<i>
 * to rerun one iteration). Iterations: SEGSTORE_HARNESS_ITERATIONS (default 500).
 *
 * Each iteration runs a random workload (puts of random and repeated content,
 * puts that must evict under a small ceiling with a random `evictable`, gets,
 * removes) and cuts power at a random mutating operation (a write may land a
 * random prefix), then crashes the file system with torn unsynced writes and
 * journaled ("ordered") or strict directory metadata — sometimes after a
 * process death first, sometimes cutting power again during recovery — reopens
 * and checks:
 *   - every put that resolved is there with its exact bytes, unless the
 *     store acknowledged its eviction or the interrupted operation evicted it
 *     (and then its record is in the log);
 *   - no torn segment is ever served: every listed segment reads back exactly,
 *     the interrupted put's segment reads exactly or is SEGMENT_MISSING, and
 *     no `corrupt` record appears (a crash is not corruption);
 *   - accounting reconciles: usage equals the segment bytes on disk (read
 *     independently), every acknowledged eviction record survives unchanged,
 *     and per segment id, creations − eviction records = present;
 *   - no temp or in-progress eviction file is left, and the store still works.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { STORE_BLOCK_BYTES, diskCost, openSegmentStore } from "../../src/edge/index.js";
import type { EvictionRecord, SegmentStore } from "../../src/edge/index.js";
import { EdgeError } from "../../src/edge/index.js";
import { seededRng } from "../../src/lib/index.js";
import type { Rng } from "../../src/lib/index.js";
import { PowerLossFs, isPowerCut } from "../helpers/power-loss-fs.js";
import type { MetadataMode } from "../helpers/power-loss-fs.js";

const ITERATIONS = Number(process.env.SEGSTORE_HARNESS_ITERATIONS ?? 500);
const SEED = process.env.SEGSTORE_HARNESS_SEED !== undefined ? Number(process.env.SEGSTORE_HARNESS_SEED) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
const ONLY = process.env.SEGSTORE_HARNESS_ONLY !== undefined ? Number(process.env.SEGSTORE_HARNESS_ONLY) : undefined;
const REPLAY = `SEGSTORE_HARNESS_SEED=${SEED}`;
const FAULT_ITERATIONS = Math.max(1, Math.floor(ITERATIONS / 2));
const DIR = "/state/edge/segments";
/** Room for six segments: each (0..1800 bytes) costs one block under the ceiling. */
const CEILING = 6 * STORE_BLOCK_BYTES;
const clock = { now: () => Date.parse("2026-06-01T00:00:00Z") };

console.log(`[segment-store-power-loss] seed=${SEED} iterations=${ITERATIONS}${ONLY !== undefined ? ` only=${ONLY}` : ""} (replay: ${REPLAY})`);

function iterationRng(i: number): Rng {
  let h = (SEED ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return seededRng(h ^ (h >>> 16));
}

const int = (rng: Rng, n: number): number => Math.floor(rng() * n);
const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

function randomBytes(rng: Rng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = int(rng, 256);
  return b;
}

type Op = { type: "put"; bytes: Uint8Array; evict: "all" | "none" | "some" } | { type: "get"; id: string } | { type: "remove"; id: string };

/** What the store acknowledged, and what it may or may not have done (an interrupted or failed operation). */
interface Model {
  content: Map<string, Uint8Array>;
  /** Ids whose last acknowledged event is a put and that no eviction record removed since. */
  present: Set<string>;
  /** created:true acknowledgements per id. */
  created: Map<string, number>;
  /** Puts that neither resolved nor certainly failed to create (interrupted by the cut, or failed by an injected fault), per id. */
  uncertain: Map<string, number>;
  /** The eviction records the store had shown after its last operation. */
  records: EvictionRecord[];
  /** The operation the power cut interrupted (cut mode). */
  interrupted: Op | undefined;
  /**
   * Every file operation fails from some point on: an eviction that can be neither recorded nor
   * undone leaves its segment under the evict name (not served) until the next open rolls it back.
   */
  persistentFaults: boolean;
}

const newModel = (): Model => ({ content: new Map(), present: new Set(), created: new Map(), uncertain: new Map(), records: [], interrupted: undefined, persistentFaults: false });
const bump = (m: Map<string, number>, id: string): void => void m.set(id, (m.get(id) ?? 0) + 1);

function nextOp(rng: Rng, model: Model): Op {
  const known = [...model.content.keys()];
  const r = rng();
  if (r < 0.55 || known.length === 0) {
    // Fresh bytes, or a repeat of earlier bytes (idempotent put, or a re-put after eviction).
    const repeat = known.length > 0 && rng() < 0.25;
    const bytes = repeat ? (model.content.get(known[int(rng, known.length)] as string) as Uint8Array) : randomBytes(rng, int(rng, 4) === 0 ? 0 : 1 + int(rng, 1800));
    const e = rng();
    return { type: "put", bytes, evict: e < 0.5 ? "all" : e < 0.75 ? "some" : "none" };
  }
  const id = known[int(rng, known.length)] as string;
  return r < 0.8 ? { type: "get", id } : { type: "remove", id };
}

const FAULT = new Set(["EIO", "ENOSPC"]);
const isFault = (e: unknown): boolean => {
  for (let c: unknown = e; c instanceof Error; c = c.cause) if (FAULT.has((c as NodeJS.ErrnoException).code ?? "")) return true;
  return false;
};

/** Runs one operation; an injected fault (EIO, ENOSPC) makes it fail, a power cut propagates. */
async function apply(store: SegmentStore, op: Op, model: Model, rng: Rng): Promise<void> {
  const seen = store.evictions().length;
  let settled = false;
  try {
    await run(store, op, model, rng);
    settled = true;
  } catch (e) {
    if (!isFault(e)) throw e;
    settled = true;
    if (op.type === "put") bump(model.uncertain, sha(op.bytes));
  } finally {
    // Whatever the store recorded (also during a failed operation) removed those segments.
    for (const r of store.evictions().slice(seen)) model.present.delete(r.id);
    if (settled) model.records = [...store.evictions()];
  }
}

async function run(store: SegmentStore, op: Op, model: Model, rng: Rng): Promise<void> {
  if (op.type === "put") {
    const id = sha(op.bytes);
    model.content.set(id, op.bytes);
    const salt = int(rng, 3);
    const evictable = op.evict === "all" ? () => true : op.evict === "none" ? () => false : (x: string) => (x.charCodeAt(0) + salt) % 3 !== 0;
    try {
      const r = await store.put(op.bytes, "data", evictable);
      if (r.created) bump(model.created, id);
      model.present.add(id);
    } catch (e) {
      if (!(e instanceof EdgeError && e.code === "STORAGE_CEILING_EXCEEDED")) throw e;
    }
  } else if (op.type === "get") {
    try {
      const got = await store.get(op.id);
      expect(sha(got), "get returned bytes that do not match the id").toBe(op.id);
    } catch (e) {
      if (!(e instanceof EdgeError && e.code === "SEGMENT_MISSING")) throw e;
      if (!model.persistentFaults) expect(model.present.has(op.id), `an acknowledged segment ${op.id} went missing before any crash`).toBe(false);
    }
  } else {
    await store.remove(op.id, "purged");
  }
}

/** The segment files on disk, read from the file system model, not through the store. */
function diskSegments(fs: PowerLossFs): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const name of fs.listDir(DIR)?.volatile ?? []) {
    const m = /^([0-9a-f]{64})\.(data|release)$/.exec(name);
    const f = fs.inspect(`${DIR}/${name}`);
    if (m && f) out.set(m[1] as string, f.volatile);
  }
  return out;
}

async function check(store: SegmentStore, fs: PowerLossFs, model: Model, where: string): Promise<void> {
  const recs = store.evictions();
  // Acknowledged records survive unchanged; the interrupted operation may have added more.
  expect(recs.slice(0, model.records.length), `${where}: acknowledged eviction records changed`).toEqual(model.records);
  const extra = recs.slice(model.records.length);
  const it = model.interrupted;
  // Under persistent faults an eviction can be neither completed nor undone: its fate is decided at open by
  // whether its record line reached the disk (either way the files and the log agree, checked below).
  const mayEvict = model.persistentFaults || (it !== undefined && (it.type === "remove" || (it.type === "put" && it.evict !== "none")));
  if (!mayEvict) expect(extra, `${where}: records appeared without an operation that evicts`).toEqual([]);
  expect(recs.filter((r) => r.reason === "corrupt"), `${where}: a crash left a segment that no longer matches its id`).toEqual([]);

  for (const id of model.present) {
    if (store.has(id)) continue;
    expect(extra.some((r) => r.id === id), `${where}: acknowledged segment ${id} lost without an eviction record`).toBe(true);
  }
  for (const info of store.list()) {
    const got = await store.get(info.id);
    expect(sha(got), `${where}: served bytes do not match id ${info.id}`).toBe(info.id);
    const known = model.content.get(info.id);
    expect(known, `${where}: a segment no put ever wrote: ${info.id}`).toBeDefined();
    expect(Buffer.from(got).equals(Buffer.from(known as Uint8Array))).toBe(true);
  }
  if (it?.type === "put") {
    const id = sha(it.bytes);
    try {
      expect(Buffer.from(await store.get(id)).equals(Buffer.from(it.bytes))).toBe(true);
    } catch (e) {
      expect(e instanceof EdgeError && e.code === "SEGMENT_MISSING", `${where}: interrupted put: ${String(e)}`).toBe(true);
    }
  }

  // Accounting against the bytes on disk.
  const disk = diskSegments(fs);
  const diskBytes = [...disk.values()].reduce((s, b) => s + b.byteLength, 0);
  const charged = [...disk.values()].reduce((s, b) => s + diskCost(b.byteLength), 0);
  expect(store.usage(), `${where}: usage vs disk`).toEqual({ used_bytes: diskBytes, disk_bytes: charged, ceiling_bytes: CEILING, segments: disk.size });
  expect(charged).toBeLessThanOrEqual(CEILING);
  expect(new Set(store.list().map((s) => s.id))).toEqual(new Set(disk.keys()));
  const ids = new Set([...model.created.keys(), ...recs.map((r) => r.id), ...disk.keys()]);
  for (const id of ids) {
    const created = model.created.get(id) ?? 0;
    const evicted = recs.filter((r) => r.id === id).length;
    const present = disk.has(id) ? 1 : 0;
    const maybe = (model.uncertain.get(id) ?? 0) + (it?.type === "put" && sha(it.bytes) === id ? 1 : 0);
    // creations − evictions = present, where an interrupted or failed put may or may not have created it.
    expect(evicted + present >= created && evicted + present <= created + maybe, `${where}: ${id} created ${created} (+${maybe} uncertain), evicted ${evicted}, present ${present}`).toBe(true);
  }
  const stray = (fs.listDir(DIR)?.volatile ?? []).filter((n) => n.startsWith("."));
  expect(stray, `${where}: leftovers after open`).toEqual([]);
}

/** In-process, before any crash: the store's view equals the segment files the file system holds now. */
async function checkLive(store: SegmentStore, fs: PowerLossFs, where: string): Promise<void> {
  const disk = diskSegments(fs);
  const diskBytes = [...disk.values()].reduce((s, b) => s + b.byteLength, 0);
  const charged = [...disk.values()].reduce((s, b) => s + diskCost(b.byteLength), 0);
  expect(store.usage(), `${where}: live usage vs disk`).toEqual({ used_bytes: diskBytes, disk_bytes: charged, ceiling_bytes: CEILING, segments: disk.size });
  for (const info of store.list()) expect(sha(await store.get(info.id)), `${where}: live read of ${info.id}`).toBe(info.id);
}

async function iteration(i: number): Promise<{ cut: boolean; recoveryCut: boolean }> {
  const rng = iterationRng(i);
  let fs = new PowerLossFs({ rng });
  await fs.mkdirDurable("/state");
  const model = newModel();
  let store = await openSegmentStore({ dir: DIR, ceilingBytes: CEILING, fs, clock });
  // Some acknowledged history before the dangerous part.
  for (let n = int(rng, 12); n > 0; n--) await apply(store, nextOp(rng, model), model, rng);

  fs.cutPowerAt(1 + int(rng, 160));
  let cut = false;
  for (let n = 0; n < 1000 && !cut; n++) {
    const op = nextOp(rng, model);
    model.interrupted = op;
    try {
      await apply(store, op, model, rng);
      model.interrupted = undefined;
    } catch (e) {
      if (!isPowerCut(e)) throw e;
      cut = true;
    }
  }
  if (!cut) model.interrupted = undefined;
  fs.disarm();
  const metadata: MetadataMode = rng() < 0.5 ? "strict" : "ordered";
  // Sometimes the process dies first and the kernel keeps its cache a while (a later power cut still loses the unsynced).
  if (rng() < 0.25) fs = fs.restart();
  fs = fs.crash({ rng, tornWrites: true, metadata });

  let recoveryCut = false;
  if (rng() < 0.3) {
    // Power fails again while the store recovers.
    fs.cutPowerAt(1 + int(rng, 4));
    try {
      await openSegmentStore({ dir: DIR, ceilingBytes: CEILING, fs, clock });
    } catch (e) {
      if (!isPowerCut(e)) throw e;
      recoveryCut = true;
    }
    fs.disarm();
    fs = fs.crash({ rng, tornWrites: true, metadata });
  }
  store = await openSegmentStore({ dir: DIR, ceilingBytes: CEILING, fs, clock });
  const where = `iteration ${i} (${REPLAY} SEGSTORE_HARNESS_ONLY=${i}; metadata ${metadata}; interrupted ${model.interrupted?.type ?? "none"})`;
  await check(store, fs, model, where);
  await stillWorks(store, fs, rng, metadata, where);
  return { cut, recoveryCut };
}

/** Injected EIO/ENOSPC (one failure, or every operation from then on): the store stays consistent while running, and after power loss. */
async function faultIteration(i: number): Promise<{ faults: number }> {
  const rng = iterationRng(100_000 + i);
  let fs = new PowerLossFs({ rng });
  await fs.mkdirDurable("/state");
  const model = newModel();
  let store = await openSegmentStore({ dir: DIR, ceilingBytes: CEILING, fs, clock });
  for (let n = int(rng, 12); n > 0; n--) await apply(store, nextOp(rng, model), model, rng);
  const persistent = rng() < 0.3;
  model.persistentFaults = persistent;
  fs.failAfter(1 + int(rng, 120), rng() < 0.5 ? "EIO" : "ENOSPC", { persistent });
  let faults = 0;
  for (let n = 0; n < 30; n++) {
    const before = model.uncertain.size;
    await apply(store, nextOp(rng, model), model, rng);
    if (model.uncertain.size !== before) faults++;
  }
  const where = `fault iteration ${i} (${REPLAY} SEGSTORE_HARNESS_ONLY=${i}; ${persistent ? "persistent" : "one"} fault)`;
  fs.disarm();
  if (!persistent) {
    await checkLive(store, fs, where);
    // The store keeps working after a fault: a put that resolves now is durable.
    const b = randomBytes(rng, 50);
    await apply(store, { type: "put", bytes: b, evict: "all" }, model, rng);
  }
  const metadata: MetadataMode = rng() < 0.5 ? "strict" : "ordered";
  fs = fs.crash({ rng, tornWrites: true, metadata });
  store = await openSegmentStore({ dir: DIR, ceilingBytes: CEILING, fs, clock });
  await check(store, fs, model, `${where} after power loss`);
  await stillWorks(store, fs, rng, metadata, where);
  return { faults };
}

async function stillWorks(store: SegmentStore, fs: PowerLossFs, rng: Rng, metadata: MetadataMode, where: string): Promise<void> {
  const fresh = randomBytes(rng, 100);
  const put = await store.put(fresh, "release", () => true);
  const after = await openSegmentStore({ dir: DIR, ceilingBytes: CEILING, fs: fs.crash({ rng, tornWrites: true, metadata }), clock });
  expect(after.info(put.info.id), `${where}: a put after recovery`).toEqual({ id: sha(fresh), size: 100, kind: "release" });
}

describe("segment store under power loss (PowerLossFs)", () => {
  it(`never loses an acknowledged segment, never serves a torn one, and reconciles its accounting (${ONLY !== undefined ? 1 : ITERATIONS} seeded iterations, ${REPLAY})`, async () => {
    let cuts = 0;
    let recoveryCuts = 0;
    const list = ONLY !== undefined ? [ONLY] : Array.from({ length: ITERATIONS }, (_, i) => i);
    for (const i of list) {
      const r = await iteration(i);
      if (r.cut) cuts++;
      if (r.recoveryCut) recoveryCuts++;
    }
    console.log(`[segment-store-power-loss] ${list.length} iterations: ${cuts} cut mid-operation, ${recoveryCuts} cut again during recovery`);
    // The harness must actually exercise power cuts, not just clean runs.
    if (ONLY === undefined) {
      expect(cuts).toBe(list.length);
      expect(recoveryCuts).toBeGreaterThan(0);
    }
  }, 300_000);

  it(`stays consistent through injected EIO and ENOSPC, live and after power loss (${ONLY !== undefined ? 1 : FAULT_ITERATIONS} seeded iterations, ${REPLAY})`, async () => {
    let faulted = 0;
    const list = ONLY !== undefined ? [ONLY] : Array.from({ length: FAULT_ITERATIONS }, (_, i) => i);
    for (const i of list) if ((await faultIteration(i)).faults > 0) faulted++;
    console.log(`[segment-store-power-loss] ${list.length} fault iterations: ${faulted} with a failed put`);
    if (ONLY === undefined) expect(faulted).toBeGreaterThan(list.length / 3);
  }, 300_000);
});
