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

export interface OpenWalOptions {
  fs?: WalFs;
  log?: WalLogger;
  /** Environment for the override variables (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  otherState?: readonly string[];
  /** Most entries committed by one fsync (group commit). */
  maxBatch?: number;
  /**
   * Hold `telemetry.lock` while open so no second process recovers (truncates)
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
  readonly #file: WalFile;
  readonly #opts: OpenWalOptions;
  #seq: number;
  #size: number;
  #offsets: number[];
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
    this.#offsets = recovered.scan.offsets;
  }

  /** Opens (and recovers) the WAL in `dir`; throws WalFailHard (exit 5) when recovery must not proceed. */
  static async open(dir: string, opts: OpenWalOptions = {}): Promise<Wal> {
    const fs = opts.fs ?? nodeWalFs;
    let release: (() => Promise<void>) | undefined;
    if (opts.lock ?? fs === nodeWalFs) {
      await fs.mkdirp(dir);
      release = await acquireFileLock(walPaths(dir).lock, {
        timeoutMs: 5_000,
        onTimeout: (pid) => new WalError("WAL_LOCKED", `the WAL in ${dir} is open in process ${pid ?? "unknown"}`, "one process owns a WAL at a time; stop the other writer, or read with `autonomy wal read` (read-only)"),
      });
    }
    try {
      const recovered = await recover({ dir, fs, log: opts.log ?? defaultWalLogger(), env: opts.env ?? process.env, ...(opts.otherState ? { otherState: opts.otherState } : {}) });
      const file = await fs.openFile(walPaths(dir).wal);
      const wal = new Wal(dir, fs, file, recovered, opts);
      wal.#release = release;
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

  /** The highest durable seq (what the safe point says). */
  get lastSeq(): number {
    return this.#seq;
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
    }
  }

  async #commit(batch: Pending[]): Promise<void> {
    const first = this.#seq + 1;
    const frames: Uint8Array[] = [];
    const accepted: Pending[] = [];
    for (const p of batch) {
      const frame = encodeFrame({ seq: first + accepted.length, event: p.event });
      if (frame.byteLength - FRAME_HEADER_BYTES > MAX_FRAME_BYTES) {
        p.reject(new WalError("WAL_ENTRY_INVALID", `entry is ${frame.byteLength} bytes; the limit is ${MAX_FRAME_BYTES}`, "split the event"));
        continue;
      }
      frames.push(frame);
      accepted.push(p);
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
    let off = this.#size;
    for (const f of frames) {
      this.#offsets.push(off);
      off += f.byteLength;
    }
    this.#size = off;
    this.#seq = last;
    accepted.forEach((p, i) => p.resolve(first + i));
  }

  /** Committed entries with seq ≥ `from` (at most `limit`), read back from disk. */
  async readFrom(from = 1, limit = Number.POSITIVE_INFINITY): Promise<WalEntry[]> {
    const out: WalEntry[] = [];
    for (let seq = Math.max(1, from); seq <= this.#seq && out.length < limit; seq++) {
      const off = this.#offsets[seq - 1] ?? 0;
      const end = this.#offsets[seq] ?? this.#size;
      const bytes = await this.#file.read(off + FRAME_HEADER_BYTES, end - off - FRAME_HEADER_BYTES);
      const entry = decodePayload(bytes);
      if (!entry || entry.seq !== seq) {
        throw new WalFailHard("WAL_CORRUPT_INVALID_JSON", this.dir, `committed frame ${seq} no longer decodes (changed on disk after recovery)`, { seq });
      }
      out.push(entry);
    }
    return out;
  }

  /** Waits for queued appends, then closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    while (this.#flushing) await this.#flushing;
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
