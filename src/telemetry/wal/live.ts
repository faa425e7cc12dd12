import { WalError, WalFailHard } from "./errors.js";
import type { WalEntry } from "./codec.js";
import { defaultWalLogger } from "./logger.js";
import type { Reclaimed } from "./sealed.js";
import type { Segment } from "./segments.js";
import { Wal } from "./wal.js";
import type { OpenWalOptions } from "./wal.js";

/** Errors after which a Wal instance refuses every later append until it is reopened (seed 001 OBS-3). */
const POISONING: ReadonlySet<string> = new Set(["WAL_POISONED", "WAL_IO", "WAL_DISK_FULL"]);

export interface LiveWalOptions extends OpenWalOptions {
  /** First delay before reopening after a failed write; doubles up to `maxRetryMs`. Default 1 s. */
  retryMs?: number;
  /** Default 30 s. */
  maxRetryMs?: number;
}

/**
 * A WAL for an unattended process: after a write fails (disk full, I/O error)
 * the instance is poisoned, as the seed requires; this wrapper then reopens it
 * in the background — recovery decides what is committed — retrying with
 * backoff, so a node whose disk filled up resumes by itself once space is
 * back (e.g. after the exporter catches up and reclaims). Appends made while
 * it is down fail with the WAL's own error; nothing acknowledged is touched.
 */
export class LiveWal {
  readonly dir: string;
  readonly #opts: LiveWalOptions;
  #wal: Wal;
  #reopening: Promise<void> | undefined;
  #closed = false;
  /** Ends the current backoff sleep early (close()). */
  #wake: (() => void) | undefined;
  /** Successful reopens since start. */
  reopens = 0;
  /** The error that triggered the current or last reopen. */
  lastError: unknown;

  private constructor(dir: string, wal: Wal, opts: LiveWalOptions) {
    this.dir = dir;
    this.#wal = wal;
    this.#opts = opts;
  }

  static async open(dir: string, opts: LiveWalOptions = {}): Promise<LiveWal> {
    return new LiveWal(dir, await Wal.open(dir, opts), opts);
  }

  /** The instance in use (replaced by each reopen). */
  get current(): Wal {
    return this.#wal;
  }

  /** "ok", or "reopening" while a failed write is being recovered from. */
  get state(): "ok" | "reopening" {
    return this.#reopening ? "reopening" : "ok";
  }

  get lastSeq(): number {
    return this.#wal.lastSeq;
  }

  get base(): number {
    return this.#wal.base;
  }

  get sealedSegments(): readonly Segment[] {
    return this.#wal.sealedSegments;
  }

  async append(event: Record<string, unknown>): Promise<number> {
    try {
      return await this.#wal.append(event);
    } catch (e) {
      if (e instanceof WalError && POISONING.has(e.code)) this.#scheduleReopen(e);
      throw e;
    }
  }

  reclaim(confirmed: number): Promise<Reclaimed> {
    return this.#wal.reclaim(confirmed);
  }

  readFrom(from?: number, limit?: number): Promise<WalEntry[]> {
    return this.#wal.readFrom(from, limit);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    await this.#reopening;
    await this.#wal.close();
  }

  #scheduleReopen(cause: unknown): void {
    if (this.#reopening || this.#closed) return;
    this.lastError = cause;
    this.#reopening = this.#reopen().finally(() => {
      this.#reopening = undefined;
    });
  }

  async #reopen(): Promise<void> {
    const log = this.#opts.log ?? defaultWalLogger();
    let delay = this.#opts.retryMs ?? 1_000;
    await this.#wal.close().catch(() => undefined);
    for (let attempt = 1; !this.#closed; attempt++) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
      if (this.#closed) return;
      try {
        this.#wal = await Wal.open(this.dir, this.#opts);
        this.reopens += 1;
        log.warn({ dir: this.dir, attempt, last_seq: this.#wal.lastSeq }, "WAL_REOPENED: recovered after a failed write; appends continue");
        return;
      } catch (e) {
        // A fail-hard is logged by recovery itself; keep trying (an operator may repair the directory) but slower.
        if (!(e instanceof WalFailHard)) log.warn({ dir: this.dir, attempt, err: e instanceof Error ? e.message : String(e) }, "WAL_REOPEN_FAILED");
        delay = Math.min(delay * 2, this.#opts.maxRetryMs ?? 30_000);
      }
    }
  }
}
