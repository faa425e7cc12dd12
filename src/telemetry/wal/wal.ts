import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";
import { join } from "node:path";
import { acquireFileLock, errnoCode } from "../../lib/index.js";
import { FRAME_HEADER_BYTES, MAX_FRAME_BYTES, decodePayload, encodeFrame } from "./codec.js";
import type { WalEntry } from "./codec.js";
import { WalError, WalFailHard } from "./errors.js";
import { nodeWalFs } from "./fs.js";
import type { WalFile, WalFs } from "./fs.js";
import { defaultWalLogger } from "./logger.js";
import type { WalLogger } from "./logger.js";
import { recover, writeSafeSeq } from "./open.js";
import type { Recovered } from "./open.js";
import { walPaths } from "./paths.js";
import { besideWrite } from "./beside.js";
import { legacyRangeOf } from "./generation.js";
import { SealedSegments } from "./sealed.js";
import type { Reclaimed } from "./sealed.js";
import { segmentName } from "./segments.js";
import type { Segment } from "./segments.js";

/** Default size at which the active segment is sealed (docs/wal.md "Bounded disk"). */
export const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;

export interface OpenWalOptions {
  fs?: WalFs;
  log?: WalLogger;
  /** Environment for the override variables (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  otherState?: readonly string[];
  /** Most entries committed by one fsync (group commit). */
  maxBatch?: number;
  /**
   * Seal the active segment once it holds at least this many bytes, so
   * confirmed frames can be reclaimed (`reclaim`). Default 16 MiB (the
   * bounded-disk extension). 0 is the seed-exact mode: never seal, never
   * reclaim, and never write into the directory a file seed 001 does not name,
   * so any seed-001 implementation reads it (docs/wal.md "On-disk modes").
   */
  segmentBytes?: number;
  /**
   * The consumer's confirmed position (e.g. the exporter's telemetry.pos). When
   * given, the WAL reclaims sealed segments at or below it after opening and
   * after every seal. It never takes part in recovery (S11).
   */
  confirmed?: () => Promise<number>;
  /**
   * Hold the lock `<dir>.lock` (beside the directory) while open so no second process recovers (truncates)
   * or appends under us. Default: on for the real file system, off otherwise.
   */
  lock?: boolean;
  /**
   * Test hooks (WS-1): called after the WAL fsync of a batch and after its
   * safe point is durable, in that order, so tests assert the ordering itself.
   */
  hooks?: { onWalSynced?: (lastSeq: number) => void; onSafeSeqAdvanced?: (seq: number) => void };
}

interface Pending {
  event: Record<string, unknown>;
  frame?: Uint8Array;
  resolve: (seq: number) => void;
  reject: (e: unknown) => void;
}

/**
 * The telemetry write-ahead log (seed 001). `append` resolves only when the
 * entry's frame is fsynced AND a safe point covering it is durable: WAL fsync →
 * safe_seq temp write → temp fsync → rename → dir fsync (S1, S8, S9).
 * Concurrent appends share one fsync and one safe-point update (group commit);
 * a single append is exactly the seed's sequence. After a failed write the
 * instance refuses further appends (WAL_POISONED): reopen, and recovery
 * decides what is committed (OBS-3).
 */
export class Wal {
  readonly dir: string;
  readonly recovered: Recovered;
  readonly #fs: WalFs;
  readonly #opts: OpenWalOptions;
  #file: WalFile;
  #seq: number;
  #size: number;
  /** Seq of the active segment's first frame; #offsets[i] is the byte offset of seq #activeFirst + i. */
  #activeFirst: number;
  #offsets: number[];
  readonly #sealed: SealedSegments;
  /** SHA-256 over the active segment's committed bytes, so a seal can name the digest without reading the file back. */
  #digest: Hash;
  #maintenance: Promise<unknown> = Promise.resolve();
  #queue: Pending[] = [];
  #flushing: Promise<void> | undefined;
  #poisoned: unknown;
  #closed = false;
  #release: (() => Promise<void>) | undefined;

  private constructor(dir: string, fs: WalFs, file: WalFile, recovered: Recovered, opts: OpenWalOptions) {
    this.dir = dir;
    this.#fs = fs;
    this.#file = file;
    this.recovered = recovered;
    this.#opts = opts;
    this.#seq = recovered.scan.maxSeq;
    this.#size = recovered.scan.truncateTo;
    this.#activeFirst = recovered.scan.firstSeq;
    this.#offsets = recovered.scan.offsets;
    this.#sealed = new SealedSegments(fs, dir, recovered.segments.base, recovered.segments.retained, legacyRangeOf(recovered.generation));
    this.#digest = recovered.activeDigest.copy();
  }

  /** Opens (and recovers) the WAL in `dir`; throws WalFailHard (exit 5) when recovery must not proceed. */
  static async open(dir: string, opts: OpenWalOptions = {}): Promise<Wal> {
    const fs = opts.fs ?? nodeWalFs;
    if (opts.segmentBytes !== undefined && !(opts.segmentBytes >= 0)) throw new RangeError(`segmentBytes must be 0 (seed-exact) or ≥ 1 (got ${opts.segmentBytes})`);
    let release: (() => Promise<void>) | undefined;
    if (opts.lock ?? fs === nodeWalFs) {
      await fs.mkdirp(dir);
      // The lock's path comes from the directory's canonical path (beside.ts): every spelling of it shares one lock.
      release = await besideWrite(dir, "its lock", () =>
        acquireFileLock(walPaths(dir).lock, {
          timeoutMs: 5_000,
          onTimeout: (pid) => new WalError("WAL_LOCKED", `the WAL in ${dir} is open in process ${pid ?? "unknown"}`, "one process owns a WAL at a time; stop the other writer, or read with `autonomy wal read` (read-only)"),
        }),
      );
    }
    try {
      const recovered = await recover({ dir, fs, log: opts.log ?? defaultWalLogger(), env: opts.env ?? process.env, ...(opts.otherState ? { otherState: opts.otherState } : {}) });
      const file = await fs.openFile(walPaths(dir).wal);
      const wal = new Wal(dir, fs, file, recovered, opts);
      wal.#release = release;
      if (opts.confirmed) await wal.#reclaimConfirmed();
      return wal;
    } catch (e) {
      await release?.();
      throw e;
    }
  }

  /**
   * Creates the WAL with its genesis safe point if it does not exist yet
   * (recovering it if it does). Called before a node writes any other state.
   */
  static async initialize(dir: string, opts: OpenWalOptions = {}): Promise<Recovered> {
    const wal = await Wal.open(dir, opts);
    await wal.close();
    return wal.recovered;
  }

  /** The WAL generation: exported event ids and telemetry.pos carry it (docs/wal.md "Generations"). */
  get generation(): string {
    return this.recovered.generation.id;
  }

  /** Seed-exact mode (segmentBytes 0): the directory stays exactly seed 001's layout. */
  get seedExact(): boolean {
    return this.#opts.segmentBytes === 0;
  }

  /** Size at which the active segment is sealed; Infinity in seed-exact mode. */
  get #segmentLimit(): number {
    const b = this.#opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    return b === 0 ? Number.POSITIVE_INFINITY : b;
  }

  /** The highest durable seq (what the safe point says). */
  get lastSeq(): number {
    return this.#seq;
  }

  /** Every seq ≤ base was reclaimed; readable entries start at base + 1. */
  get base(): number {
    return this.#sealed.base;
  }

  /** Sealed segments still on disk, oldest first. */
  get sealedSegments(): readonly Segment[] {
    return this.#sealed.list;
  }

  /** Appends one event; resolves with its seq once it is durable. */
  append(event: Record<string, unknown>): Promise<number> {
    if (this.#closed) return Promise.reject(new WalError("WAL_CLOSED", `the WAL in ${this.dir} is closed`, "open it again"));
    if (this.#poisoned !== undefined) return Promise.reject(poisoned(this.dir, this.#poisoned));
    if (typeof event !== "object" || event === null || Array.isArray(event)) {
      return Promise.reject(new WalError("WAL_ENTRY_INVALID", "a WAL entry must be a JSON object", "wrap the value in an object"));
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ event, resolve, reject });
      this.#kick();
    });
  }

  /**
   * Starts the commit loop unless it runs. When the loop ends it looks at the
   * queue once more: an append that arrived after the loop's last check but
   * before it finished would otherwise wait for a wakeup that never comes.
   */
  #kick(): void {
    this.#flushing ??= this.#drain().finally(() => {
      this.#flushing = undefined;
      if (this.#queue.length > 0) this.#kick();
    });
  }

  /** Commits queued appends in batches until the queue is empty. */
  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#opts.maxBatch ?? 1024);
      if (this.#poisoned !== undefined) {
        for (const p of batch) p.reject(poisoned(this.dir, this.#poisoned));
        continue;
      }
      await this.#commit(batch);
      // Never seal an empty segment (its name would name no seqs).
      if (this.#poisoned === undefined && this.#seq >= this.#activeFirst && this.#size >= this.#segmentLimit) await this.#seal();
    }
  }

  /**
   * Seals the active segment between commits: its frames are all covered by the
   * safe point. rename → fsync(dir) → create the new active → fsync(dir): the
   * rename is durable before a new telemetry.wal can exist, so no crash can
   * leave an empty active file in place of the old one. A failure poisons the
   * instance; recovery sorts out either half.
   */
  async #seal(): Promise<void> {
    const sha256 = this.#digest.copy().digest("hex");
    const name = segmentName(this.#activeFirst, this.#seq, sha256);
    const seg: Segment = { first: this.#activeFirst, last: this.#seq, sha256, name, path: join(this.dir, name) };
    const p = walPaths(this.dir);
    let next: WalFile;
    try {
      await this.#fs.rename(p.wal, seg.path);
      await this.#fs.fsyncDir(this.dir);
      next = await this.#fs.openFile(p.wal);
      await this.#fs.fsyncDir(this.dir);
    } catch (e) {
      this.#poisoned = e;
      return;
    }
    // Switch in one synchronous step, so a concurrent readFrom sees either the old or the new layout.
    const old = this.#file;
    this.#file = next;
    this.#sealed.add(seg);
    this.#activeFirst = this.#seq + 1;
    this.#offsets = [];
    this.#size = 0;
    this.#digest = createHash("sha256");
    await old.close().catch(() => undefined);
    if (this.#opts.confirmed) await this.#reclaimConfirmed();
  }

  async #reclaimConfirmed(): Promise<void> {
    try {
      const pos = await this.#opts.confirmed?.();
      if (pos === undefined) return;
      if (pos > this.#seq) {
        // A consumer cannot have confirmed what was never committed: the position is stale (another WAL's). Keep everything.
        (this.#opts.log ?? defaultWalLogger()).warn({ dir: this.dir, pos, committed: this.#seq }, "WAL_RECLAIM_SKIPPED: the confirmed position is past the committed WAL");
        return;
      }
      await this.reclaim(pos);
    } catch (e) {
      // Reclamation only frees space; a failure must not fail appends. Recovery finishes a half-done one.
      (this.#opts.log ?? defaultWalLogger()).warn({ dir: this.dir, err: errnoCode(e) ?? String(e) }, "WAL_RECLAIM_FAILED");
    }
  }

  /**
   * Deletes every sealed segment whose frames are all ≤ `confirmed` (capped at
   * the committed seq; never the active segment). Serialised with other
   * reclamations; a no-op once closed, and in seed-exact mode (it would write
   * telemetry.wal.base, which the seed does not name).
   */
  reclaim(confirmed: number): Promise<Reclaimed> {
    const idle = this.#closed || this.seedExact;
    const run = this.#maintenance.then(() => (idle ? { segments: 0, bytes: 0, base: this.#sealed.base } : this.#sealed.reclaim(Math.min(confirmed, this.#seq))));
    this.#maintenance = run.catch(() => undefined);
    return run;
  }

  async #commit(batch: Pending[]): Promise<void> {
    const first = this.#seq + 1;
    const frames: Uint8Array[] = [];
    const accepted: Pending[] = [];
    // A batch stops where the active segment would pass its size, so segments stay near it; the rest waits for the next commit.
    const room = this.#segmentLimit - this.#size;
    let bytes = 0;
    for (const [i, p] of batch.entries()) {
      const frame = encodeFrame({ seq: first + accepted.length, event: p.event });
      if (frame.byteLength - FRAME_HEADER_BYTES > MAX_FRAME_BYTES) {
        p.reject(new WalError("WAL_ENTRY_INVALID", `entry is ${frame.byteLength} bytes; the limit is ${MAX_FRAME_BYTES}`, "split the event"));
        continue;
      }
      if (accepted.length > 0 && bytes + frame.byteLength > room) {
        this.#queue.unshift(...batch.slice(i));
        break;
      }
      frames.push(frame);
      accepted.push(p);
      bytes += frame.byteLength;
    }
    if (accepted.length === 0) return;
    const data = Buffer.concat(frames);
    const last = first + accepted.length - 1;
    let safePointTouched = false;
    try {
      await this.#file.write(data, this.#size);
      await this.#file.sync();
      this.#opts.hooks?.onWalSynced?.(last);
      safePointTouched = true;
      await writeSafeSeq(this.#fs, this.dir, last);
      this.#opts.hooks?.onSafeSeqAdvanced?.(last);
    } catch (e) {
      this.#poisoned = e;
      // Drop the unacknowledged tail only while no safe point can name it: once the
      // rename may have happened, those frames may be committed and must stay.
      if (!safePointTouched) await this.#file.truncate(this.#size).catch(() => undefined);
      const err = writeFailed(this.dir, e);
      for (const p of accepted) p.reject(err);
      return;
    }
    this.#digest.update(data);
    let off = this.#size;
    for (const f of frames) {
      this.#offsets.push(off);
      off += f.byteLength;
    }
    this.#size = off;
    this.#seq = last;
    accepted.forEach((p, i) => p.resolve(first + i));
  }

  /**
   * Committed entries with seq ≥ `from` (at most `limit`), read back from disk:
   * sealed segments, then the active one. Safe beside appends: a seal during
   * the read sends the rest through the sealed segment it became.
   */
  async readFrom(from = 1, limit = Number.POSITIVE_INFINITY): Promise<WalEntry[]> {
    const out: WalEntry[] = [];
    let seq = Math.max(1, from, this.#sealed.base + 1);
    while (seq <= this.#seq && out.length < limit) {
      if (seq < this.#activeFirst) {
        const next = await this.#sealed.read(seq, this.#activeFirst, limit, out);
        if (next === seq && out.length < limit) throw new WalFailHard("SEGMENT_INVALID", this.dir, `no sealed segment holds seq ${seq}`, { seq });
        seq = next;
        continue;
      }
      if (this.#offsets[seq - this.#activeFirst] === undefined && seq - this.#activeFirst < this.#offsets.length) {
        seq += 1; // a legacy gap (OBS-4): no frame carries this seq
        continue;
      }
      const entry = await this.#readActive(seq);
      if (entry === undefined) continue; // sealed while we read: go round through the sealed segment
      out.push(entry);
      seq += 1;
    }
    return out;
  }

  /** One committed entry of the active segment; undefined when a seal moved it meanwhile. */
  async #readActive(seq: number): Promise<WalEntry | undefined> {
    const first = this.#activeFirst;
    const off = this.#offsets[seq - first] ?? 0;
    // The next frame's offset (past any legacy gap), or the committed end.
    let end = this.#size;
    for (let i = seq - first + 1; i < this.#offsets.length; i++) {
      const o = this.#offsets[i];
      if (o !== undefined) {
        end = o;
        break;
      }
    }
    let bytes: Uint8Array;
    try {
      bytes = await this.#file.read(off + FRAME_HEADER_BYTES, end - off - FRAME_HEADER_BYTES);
    } catch (e) {
      if (this.#activeFirst !== first) return undefined; // the handle was closed by the seal
      throw e;
    }
    if (this.#activeFirst !== first) return undefined;
    const entry = decodePayload(bytes);
    if (!entry || entry.seq !== seq) {
      throw new WalFailHard("WAL_CORRUPT_INVALID_JSON", this.dir, `committed frame ${seq} no longer decodes (changed on disk after recovery)`, { seq });
    }
    return entry;
  }

  /** Waits for queued appends, then closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    while (this.#flushing) await this.#flushing;
    await this.#maintenance;
    this.#closed = true;
    await this.#file.close();
    await this.#release?.();
  }
}

function poisoned(dir: string, cause: unknown): WalError {
  return new WalError("WAL_POISONED", `an earlier write to the WAL in ${dir} failed (${errnoCode(cause) ?? String(cause)}); this instance accepts no more appends`,
    "reopen the WAL: recovery keeps every acknowledged entry and drops the unacknowledged tail", { cause });
}

function writeFailed(dir: string, e: unknown): WalError {
  if (errnoCode(e) === "ENOSPC") {
    return new WalError("WAL_DISK_FULL", `the disk holding ${dir} is full; the entry was NOT written (nothing acknowledged is lost)`,
      "free space (the exporter reclaims confirmed frames), then reopen the WAL", { cause: e });
  }
  return new WalError("WAL_IO", `writing the WAL in ${dir} failed: ${errnoCode(e) ?? String(e)}; the entry was NOT written`, "check the disk, then reopen the WAL", { cause: e });
}
