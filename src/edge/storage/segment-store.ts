import { createHash } from "node:crypto";
import { statfs } from "node:fs/promises";
import { dirname, join } from "node:path";
import { errnoCode, isoTime, systemClock } from "../../lib/index.js";
import type { Clock } from "../../lib/index.js";
import { nodeWalFs } from "../../telemetry/index.js";
import type { WalFs } from "../../telemetry/index.js";
import { EdgeError } from "../errors.js";
import type { EvictionReason, EvictionRecord, SegmentId, SegmentInfo, SegmentKind, SegmentStore, StoreUsage, StoreVerifyReport } from "../types.js";
import { EvictionLog, isEvictionReason } from "./eviction-log.js";
import type { LoggedEviction } from "./eviction-log.js";
import { verifiedIdOf } from "./verified.js";
import { EVICTION_LOG, checkSegmentId, evictName, isSegmentKind, parseName, segmentName, tempName } from "./names.js";

export interface SegmentStoreOptions {
  /** `{state_root}/edge/segments` (src/node stateRootPaths().edgeSegments). */
  dir: string;
  /** The most disk the segments may take, each charged {@link diskCost} (the eviction log is not counted). */
  ceilingBytes: number;
  /** The file system; tests pass a power-loss model (test/helpers/power-loss-fs.ts). */
  fs?: WalFs;
  clock?: Clock;
}

/** The allocation unit the ceiling charges by, at least: a 1-byte file still takes a 4 KiB block (and an inode). */
export const STORE_BLOCK_BYTES = 4096;

/**
 * What one segment of `size` bytes costs under the ceiling: its size rounded up
 * to whole blocks, and at least one block (also for 0 bytes: the inode and the
 * directory entry are not free). So the ceiling bounds the disk the files take,
 * and the number of files too: at most ceiling / block.
 */
export function diskCost(size: number, block = STORE_BLOCK_BYTES): number {
  return Math.max(block, Math.ceil(size / block) * block);
}

/** The real file system's block size when it is larger than {@link STORE_BLOCK_BYTES} (some use 16 or 64 KiB). */
async function blockOf(dir: string): Promise<number> {
  const s = await statfs(dir).catch(() => undefined);
  return Math.max(STORE_BLOCK_BYTES, s?.bsize ?? 0);
}

/** Lowercase hex SHA-256: a segment's id. */
export function segmentIdOf(bytes: Uint8Array): SegmentId {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Opens (creating if needed) the segment store in `dir` and recovers it: put
 * temp files are removed, interrupted evictions are finished (their record was
 * written) or rolled back (it was not), and usage is recomputed from the names
 * and sizes of the files on disk. Open does not read the segments' contents
 * (that took a second per few hundred MiB on every start): every `get` re-hashes
 * what it serves, and `verify()` scrubs the whole store on demand.
 */
export async function openSegmentStore(opts: SegmentStoreOptions): Promise<SegmentStore> {
  if (!Number.isSafeInteger(opts.ceilingBytes) || opts.ceilingBytes <= 0) {
    throw new RangeError(`segment store: ceilingBytes must be a positive integer, got ${opts.ceilingBytes}`);
  }
  const fs = opts.fs ?? nodeWalFs;
  await makeDirDurable(fs, opts.dir);
  const log = await EvictionLog.open(fs, join(opts.dir, EVICTION_LOG));
  // The injected (model) file systems have no blocks: they are charged the default.
  const block = opts.fs === undefined ? await blockOf(opts.dir) : STORE_BLOCK_BYTES;
  const store = new FsSegmentStore(fs, opts.dir, opts.ceilingBytes, block, opts.clock ?? systemClock, log);
  await store.recover();
  return store;
}

/** mkdir -p, then fsync every directory whose entry was created, so the store's directory survives power loss. */
async function makeDirDurable(fs: WalFs, dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = dir; !(await fs.exists(d)); d = dirname(d)) {
    missing.push(d);
    if (dirname(d) === d) break;
  }
  if (missing.length === 0) return;
  await fs.mkdirp(dir);
  for (const d of missing) await fs.fsyncDir(dirname(d));
}

interface Entry {
  id: SegmentId;
  kind: SegmentKind;
  size: number;
  /** diskCost(size): what it counts under the ceiling. */
  cost: number;
}

/** The store's `evictable` callback: false keeps a segment, true evicts it as `lru_ceiling`, a reason evicts it as that. */
type Evictable = (id: SegmentId) => boolean | EvictionReason;

type PutResult = { info: SegmentInfo; created: boolean; evicted: EvictionRecord[] };

const info = (e: Entry): SegmentInfo => ({ id: e.id, size: e.size, kind: e.kind });
const publicRecord = (r: LoggedEviction): EvictionRecord => ({ id: r.id, bytes: r.bytes, reason: r.reason, at: r.at });

/**
 * The store. Mutations (a put's admission, remove, the removal of a corrupt
 * segment) run one at a time, so the ceiling check and the evictions it plans
 * see a stable state; the bytes an admitted put will write are reserved under
 * the ceiling, and its write runs beside other puts' writes (each to its own
 * temp file), so their fsyncs overlap. Reads run beside them: a segment's file never changes once named, and
 * an eviction renames it away atomically, so a read sees the exact bytes or
 * nothing (SEGMENT_MISSING).
 *
 * An eviction is: rename `<id>.<kind>` → `.evict-<seq>.<id>.<kind>`, fsync the
 * directory, append record `seq` (fsynced), unlink, fsync the directory. Open
 * finishes an eviction whose record is in the log and rolls back one whose
 * record is not, so the log and the files always agree after a power cut.
 */
class FsSegmentStore implements SegmentStore {
  /** Insertion order is recency: the first entry is the least recently used. */
  readonly #index = new Map<SegmentId, Entry>();
  /** Byte lengths, summed (usage().used_bytes). */
  #used = 0;
  /** Disk costs, summed: what the ceiling counts. */
  #disk = 0;
  #queue: Promise<unknown> = Promise.resolve();
  /** Disk cost of puts admitted under the ceiling whose write is still in progress. */
  #reserved = 0;
  /** The write in progress per id (admitted, not yet named and synced). */
  readonly #writing = new Map<SegmentId, Promise<Entry>>();
  /**
   * Renames into place, and how many of them a completed directory fsync
   * covers: a segment renamed but not yet covered (its own sync failed, or is
   * still running) is synced before it is acknowledged again.
   */
  #renames = 0;
  #syncedRenames = 0;
  /** Evicted files whose unlink failed after their record was written; retried before the next mutation, and at open. */
  readonly #leftovers = new Set<string>();

  constructor(
    private readonly fs: WalFs,
    private readonly dir: string,
    private readonly ceiling: number,
    private readonly block: number,
    private readonly clock: Clock,
    private readonly log: EvictionLog,
  ) {}

  // ---------------------------------------------------------------- SegmentStore

  async put(bytes: Uint8Array, kind: SegmentKind, evictable: Evictable = () => false): Promise<PutResult> {
    if (!isSegmentKind(kind)) throw new TypeError(`segment store: unknown segment kind ${JSON.stringify(kind)}`);
    // A buffer a SegmentAssembler verified (the relay receiver's) is written as it is: copied and hashed once already.
    const known = verifiedIdOf(bytes);
    if (known !== undefined) return this.#put(known, kind, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), evictable);
    // Our own copy: the id must name exactly the bytes written, whatever the caller does with its buffer meanwhile.
    const data = Buffer.from(bytes);
    return this.#put(segmentIdOf(data), kind, data, evictable);
  }

  /**
   * Admission (dedupe, ceiling plan, evictions, reserving the bytes) runs one
   * mutation at a time; the write itself (temp → fsync → rename → fsync dir)
   * runs beside other puts' writes, so their fsyncs overlap. One write per id
   * at a time: a put of bytes already being written waits for that write.
   */
  async #put(id: SegmentId, kind: SegmentKind, data: Buffer, evictable: Evictable): Promise<PutResult> {
    for (;;) {
      const writing = this.#writing.get(id);
      if (writing !== undefined) await writing.catch(() => undefined);
      const admitted = await this.#exclusive(async (): Promise<PutResult | EvictionRecord[] | undefined> => {
        const existing = this.#index.get(id);
        if (existing) {
          // Idempotent: same bytes, same segment (its kind is the one first stored).
          if (this.#syncedRenames < this.#renames) await this.#syncDir();
          this.#touch(existing);
          return { info: info(existing), created: false, evicted: [] };
        }
        if (this.#writing.has(id)) return undefined; // another put of these bytes got in first: wait for it
        const victims = this.#plan(id, data.byteLength, evictable);
        const evicted: EvictionRecord[] = [];
        for (const v of victims) evicted.push(publicRecord(await this.#evict(v.entry, v.reason)));
        this.#reserved += this.#cost(data.byteLength);
        return evicted;
      });
      if (admitted === undefined) continue;
      if (!Array.isArray(admitted)) return admitted;
      const write = this.#write(id, kind, data).finally(() => {
        this.#reserved -= this.#cost(data.byteLength);
        this.#writing.delete(id);
      });
      this.#writing.set(id, write);
      const entry = await write;
      return { info: info(entry), created: true, evicted: admitted };
    }
  }

  async get(id: SegmentId): Promise<Uint8Array> {
    checkSegmentId(id);
    const entry = this.#index.get(id);
    if (!entry) throw missing(id);
    const bytes = await this.fs.readFile(join(this.dir, segmentName(id, entry.kind)));
    if (bytes === undefined) throw missing(id);
    if (segmentIdOf(bytes) !== id) {
      // Removing it is housekeeping: if that fails too, the answer is still SEGMENT_CORRUPT (open re-checks it).
      const removed = await this.#exclusive(async () => {
        if (this.#index.get(id) === entry) await this.#evict(entry, "corrupt");
      }).then(() => true, () => false);
      throw new EdgeError("SEGMENT_CORRUPT", `segment ${id} no longer matches its digest (${bytes.byteLength} bytes on disk); ${removed ? "it was removed from the store" : "removing it failed; the next open will"}`, { details: { segment_id: id } });
    }
    if (this.#index.get(id) === entry) this.#touch(entry);
    return bytes;
  }

  has(id: SegmentId): boolean {
    return this.#index.has(id);
  }

  info(id: SegmentId): SegmentInfo | undefined {
    const e = this.#index.get(id);
    return e ? info(e) : undefined;
  }

  remove(id: SegmentId, reason: EvictionReason): Promise<EvictionRecord | undefined> {
    // An unknown reason would write a record that open cannot read back (it would cut the log there).
    if (!isEvictionReason(reason)) return Promise.reject(new TypeError(`segment store: unknown eviction reason ${JSON.stringify(reason)}`));
    return this.#exclusive(async () => {
      const entry = this.#index.get(id);
      return entry ? publicRecord(await this.#evict(entry, reason)) : undefined;
    });
  }

  usage(): StoreUsage {
    return { used_bytes: this.#used, disk_bytes: this.#disk, ceiling_bytes: this.ceiling, segments: this.#index.size };
  }

  evictions(): readonly EvictionRecord[] {
    return this.log.records.map(publicRecord);
  }

  list(): SegmentInfo[] {
    return [...this.#index.values()].map(info);
  }

  /**
   * Scrub: reads and re-hashes every segment, one at a time, beside normal
   * work (a read never blocks a put). A segment whose bytes no longer match
   * its id — or whose file vanished under the store — is removed with a
   * `corrupt` record, exactly as a `get` that found it would.
   */
  async verify(): Promise<StoreVerifyReport> {
    const report: StoreVerifyReport = { checked: 0, bytes: 0, removed: [] };
    for (const entry of [...this.#index.values()]) {
      const bytes = await this.fs.readFile(join(this.dir, segmentName(entry.id, entry.kind)));
      if (this.#index.get(entry.id) !== entry) continue; // evicted meanwhile: nothing to check
      report.checked += 1;
      report.bytes += bytes?.byteLength ?? 0;
      if (bytes !== undefined && segmentIdOf(bytes) === entry.id) continue;
      const rec = await this.#exclusive(async () => (this.#index.get(entry.id) === entry ? this.#evict(entry, "corrupt") : undefined));
      if (rec !== undefined) report.removed.push(publicRecord(rec));
    }
    return report;
  }

  // ---------------------------------------------------------------- recovery

  async recover(): Promise<void> {
    const names = (await this.fs.list(this.dir)).sort();
    const present = new Set(names);
    const candidates: { id: SegmentId; kind: SegmentKind }[] = [];
    let changed = false;
    for (const name of names) {
      const p = parseName(name);
      if (p.type === "temp") {
        // A put that never completed: it was never acknowledged.
        await this.fs.unlink(join(this.dir, name));
        changed = true;
      } else if (p.type === "evict") {
        const back = segmentName(p.id, p.kind);
        if (this.log.has(p.seq, p.id) || present.has(back)) {
          await this.fs.unlink(join(this.dir, name));
        } else {
          // Its record never became durable: the eviction did not happen.
          await this.fs.rename(join(this.dir, name), join(this.dir, back));
          present.add(back);
          candidates.push({ id: p.id, kind: p.kind });
        }
        changed = true;
      } else if (p.type === "segment") {
        candidates.push({ id: p.id, kind: p.kind });
      }
    }
    // Rolled-back names must be durable before a new record can reuse their sequence number.
    if (changed) await this.#syncDir();
    for (const c of candidates) await this.#admit(c.id, c.kind);
  }

  /**
   * Counts one segment file found at open by its name and size (its contents
   * are checked when read, and by `verify`). A second file for the same id
   * (another kind) leaves with a `corrupt` record: one id, one segment.
   */
  async #admit(id: SegmentId, kind: SegmentKind): Promise<void> {
    const size = await this.fs.fileSize(join(this.dir, segmentName(id, kind)));
    if (size === undefined) return;
    const entry = this.#entry(id, kind, size);
    if (this.#index.has(id)) {
      await this.#evict(entry, "corrupt", false);
      return;
    }
    this.#add(entry);
  }

  // ---------------------------------------------------------------- internals

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(async () => {
      await this.#retryLeftovers();
      return fn();
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #cost(size: number): number {
    return diskCost(size, this.block);
  }

  #entry(id: SegmentId, kind: SegmentKind, size: number): Entry {
    return { id, kind, size, cost: this.#cost(size) };
  }

  #add(e: Entry): void {
    this.#index.set(e.id, e);
    this.#used += e.size;
    this.#disk += e.cost;
  }

  #drop(e: Entry): void {
    this.#index.delete(e.id);
    this.#used -= e.size;
    this.#disk -= e.cost;
  }

  #touch(e: Entry): void {
    this.#index.delete(e.id);
    this.#index.set(e.id, e);
  }

  /**
   * The least-recently-used segments `evictable` allows whose removal makes a
   * segment of `size` bytes (its disk cost) fit under the ceiling. All or
   * nothing: when even every allowed segment would not make room, nothing is
   * evicted and the put fails — evicting delivered segments for a write that
   * cannot happen anyway would only destroy data (a later retry to a slow peer
   * may still need them).
   */
  #plan(id: SegmentId, size: number, evictable: Evictable): { entry: Entry; reason: EvictionReason }[] {
    const cost = this.#cost(size);
    // Admitted writes still in progress count: concurrent puts never overshoot the ceiling together.
    const need = this.#disk + this.#reserved + cost - this.ceiling;
    if (need <= 0) return [];
    const victims: { entry: Entry; reason: EvictionReason }[] = [];
    let freed = 0;
    if (cost <= this.ceiling) {
      for (const e of this.#index.values()) {
        if (freed >= need) break;
        const allowed = evictable(e.id);
        if (allowed === false) continue;
        const reason = allowed === true ? "lru_ceiling" : allowed;
        // An unknown reason would write a record open cannot read back: refuse before anything changes.
        if (!isEvictionReason(reason)) throw new TypeError(`segment store: unknown eviction reason ${JSON.stringify(reason)}`);
        victims.push({ entry: e, reason });
        freed += e.cost;
      }
    }
    if (freed >= need) return victims;
    throw new EdgeError(
      "STORAGE_CEILING_EXCEEDED",
      `segment ${id} (${size} bytes, ${cost} on disk) does not fit under the storage ceiling of ${this.ceiling} bytes: ${this.#disk} bytes in use on disk ` +
        `(${this.#index.size} segments, ${this.#reserved} reserved by writes in progress), ${freed} of them evictable (delivered, or arrivals the application consumed); nothing was evicted or written`,
      { details: { segment_id: id, size, disk_cost: cost, used_bytes: this.#used, disk_bytes: this.#disk, reserved_bytes: this.#reserved, ceiling_bytes: this.ceiling, evictable_bytes: freed } },
    );
  }

  /** temp → fsync → rename → fsync(dir). */
  async #write(id: SegmentId, kind: SegmentKind, data: Buffer): Promise<Entry> {
    const tmp = join(this.dir, tempName(id, kind));
    try {
      await this.fs.writeFileSynced(tmp, data);
      await this.fs.rename(tmp, join(this.dir, segmentName(id, kind)));
    } catch (e) {
      await this.fs.unlink(tmp).catch(() => undefined);
      throw e;
    }
    // Named and complete (fsynced before the rename): it is in the store, acknowledged or not.
    const entry = this.#entry(id, kind, data.byteLength);
    this.#add(entry);
    this.#renames++;
    await this.#syncDir();
    return entry;
  }

  /** Removes one segment with a durable record (the protocol in the class comment). `indexed`: it is in the index (not at open). */
  async #evict(entry: Entry, reason: EvictionReason, indexed = true): Promise<LoggedEviction> {
    const seq = this.log.nextSeq;
    const from = join(this.dir, segmentName(entry.id, entry.kind));
    const to = join(this.dir, evictName(seq, entry.id, entry.kind));
    // A file that vanished under the store (found by get or verify) is recorded all the same: the log and the disk agree.
    const renamed = await this.fs.rename(from, to).then(() => true, (e: unknown) => {
      if (errnoCode(e) === "ENOENT" && indexed) return false;
      throw e;
    });
    const rec: LoggedEviction = { seq, id: entry.id, kind: entry.kind, bytes: entry.size, reason, at: isoTime(this.clock) };
    try {
      await this.fs.fsyncDir(this.dir);
      await this.log.append(rec);
    } catch (e) {
      // No record: undo a possibly half-written one, then put the segment back (open would do the same after a crash).
      // If the log cannot be cut back, leave the evict name: open decides by whether the record survived.
      const undone = await this.log.undoTail().then(() => true, () => false);
      const restored = undone && (!renamed || (await this.fs.rename(to, from).then(() => true, () => false)));
      // Misplaced until the next open rolls it back: not served meanwhile.
      if (!restored && indexed) this.#drop(entry);
      throw e;
    }
    if (indexed) this.#drop(entry);
    if (!renamed) return rec;
    try {
      await this.fs.unlink(to);
      await this.fs.fsyncDir(this.dir);
    } catch (e) {
      if (errnoCode(e) !== "ENOENT") this.#leftovers.add(to);
    }
    return rec;
  }

  async #retryLeftovers(): Promise<void> {
    if (this.#leftovers.size === 0) return;
    for (const path of [...this.#leftovers]) {
      await this.fs.unlink(path).catch((e: unknown) => {
        if (errnoCode(e) !== "ENOENT") throw e;
      });
      this.#leftovers.delete(path);
    }
    await this.#syncDir();
  }

  async #syncDir(): Promise<void> {
    // Only the renames done before this fsync started are covered by it.
    const covers = this.#renames;
    await this.fs.fsyncDir(this.dir);
    this.#syncedRenames = Math.max(this.#syncedRenames, covers);
  }
}

function missing(id: SegmentId): EdgeError {
  return new EdgeError("SEGMENT_MISSING", `segment ${id} is not in the store`, { details: { segment_id: id } });
}
