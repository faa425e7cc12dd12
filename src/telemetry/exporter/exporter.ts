/**
 * The WAL exporter: drains committed WAL entries to a sink, highest priority
 * first, at least once, with bounded memory.
 *
 * State (all of it rebuilt from telemetry.pos after a restart):
 *   pos        every seq ≤ pos of the WAL's generation is confirmed (delivered or
 *              dead-lettered, or carried by no frame: an accepted legacy gap); persisted
 *   known      the highest committed seq looked at so far (≤ telemetry.safe_seq)
 *   bits       seqs in (pos, known] confirmed out of order (SeqBitset, 1 bit each)
 *   per level  pending count, last seq, and `done`: every entry of that level
 *              ≤ done is confirmed (ten levels at most: a few numbers each)
 *
 * Each batch: re-read the safe point and census any new entries (one streaming
 * pass over the new range, keeping only the per-level numbers); pick the
 * highest level with pending entries; stream from its `done` and collect up to
 * batchSize / maxInFlightBytes unconfirmed entries of that level; send. So a
 * backlog drains level by level, and an error appended mid-drain goes out with
 * the next batch, ahead of the lower levels still pending. Memory: one batch,
 * one read buffer, the bitset; never the backlog.
 */
import { acquireFileLock, isoTime, systemClock } from "../../lib/index.js";
import type { Clock } from "../../lib/index.js";
import { besideWalDir, besideWrite } from "../wal/index.js";
import type { WalLogger } from "../wal/index.js";
import { DEFAULT_RETRY, backoffDelay, sleep } from "./backoff.js";
import type { RetryPolicy } from "./backoff.js";
import { SeqBitset } from "./bitset.js";
import { appendRejected } from "./deadletter.js";
import type { RejectedLine } from "./deadletter.js";
import { ExportError } from "./errors.js";
import { readPos, removeStalePosTmp, writePos } from "./pos.js";
import { MAX_PRIORITY, priorityOf } from "./priority.js";
import { WalFileReader } from "../wal/index.js";
import type { WalSource } from "./source.js";
import { toExportRecord } from "./record.js";
import type { ExportRecord } from "./record.js";
import { SinkRejected, SinkUnavailable } from "./sinks.js";
import type { Sink } from "./sinks.js";

/**
 * The exporter's lock, `<dir>.exporter.lock`: beside the WAL directory, like the WAL's
 * own lock, so a seed-exact directory holds only files seed 001 names (docs/wal.md).
 */
export function exporterLockPath(walDir: string): string {
  return besideWalDir(walDir, "exporter.lock");
}

export interface ExporterLogger extends WalLogger {
  info?(obj: Record<string, unknown>, msg: string): void;
}

export interface ExporterOptions {
  /** The WAL directory (read through WalFileReader), or any WalSource (e.g. walSource(openWal)). */
  wal: string | WalSource;
  sink: Sink;
  /** This node's id: OTLP service.name / autonomy.node_id, control-plane node_id, half of the dedupe key. */
  nodeId: string;
  /** Most records per request. Default 512. */
  batchSize?: number;
  /** Most WAL payload bytes per request (a single larger record still goes, alone). Default 1 MiB. */
  maxInFlightBytes?: number;
  retry?: Partial<RetryPolicy>;
  /** run(): how often to look for new entries once caught up. Default 500 ms. */
  pollMs?: number;
  /** Clock for status and dead-letter times. Default {@link systemClock}. */
  clock?: Clock;
  /** For backoff jitter. */
  random?: () => number;
  log?: ExporterLogger;
  /** Hold the exporter lock (`<dir>.exporter.lock`) so two exporters never share one position. Default: on. */
  lock?: boolean;
}

export interface ExporterStatus {
  node_id: string;
  sink: string;
  state: "new" | "idle" | "sending" | "backoff" | "stopped";
  /** telemetry.pos: every seq ≤ pos is confirmed. */
  pos: number;
  /** Highest committed seq seen. */
  committed: number;
  /** Committed entries not yet confirmed. */
  backlog: number;
  backlog_by_priority: Record<string, number>;
  /** Entries confirmed by this process (delivered or dead-lettered). */
  confirmed: number;
  sent_records: number;
  batches: number;
  /** Failed attempts that were (or will be) retried. */
  retries: number;
  consecutive_failures: number;
  dead_lettered: number;
  /** Records the receiver dropped in OTLP partial successes. */
  partial_rejected: number;
  records_in_flight: number;
  /** WAL payload bytes of the request in flight. */
  bytes_in_flight: number;
  last_error: { message: string; at: string; status?: number; reason?: string } | null;
  last_success_at: string | null;
}

export interface DrainResult {
  /** Every committed entry seen is confirmed (pos = committed). */
  caughtUp: boolean;
  /** Records confirmed by this call (delivered or dead-lettered). */
  confirmed: number;
  deadLettered: number;
  batches: number;
  pos: number;
  committed: number;
  backlog: number;
  /** Why the call stopped early (the sink is down, slow, or answering 5xx). */
  error?: Error;
  aborted?: boolean;
}

const LEVELS = MAX_PRIORITY + 1;

export class Exporter {
  readonly source: WalSource;
  readonly sink: Sink;
  readonly nodeId: string;
  readonly #batchSize: number;
  readonly #maxBytes: number;
  readonly #retry: RetryPolicy;
  readonly #pollMs: number;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #log: ExporterLogger | undefined;
  readonly #lock: boolean;
  #release: (() => Promise<void>) | undefined;
  #initialised = false;
  #closed = false;
  #pos = 0;
  /** The WAL generation being exported: telemetry.pos and every event id carry it. */
  #generation = "";
  #known = 0;
  #bits = new SeqBitset(0);
  #pending: number[] = new Array<number>(LEVELS).fill(0);
  #last: number[] = new Array<number>(LEVELS).fill(0);
  #done: number[] = new Array<number>(LEVELS).fill(0);
  #status: ExporterStatus;
  #lastLoggedError: string | undefined;
  #busy = false;

  constructor(o: ExporterOptions) {
    this.source = typeof o.wal === "string" ? new WalFileReader(o.wal) : o.wal;
    this.sink = o.sink;
    this.nodeId = o.nodeId;
    this.#batchSize = Math.max(1, Math.floor(o.batchSize ?? 512));
    this.#maxBytes = Math.max(1, Math.floor(o.maxInFlightBytes ?? 1024 * 1024));
    this.#retry = { ...DEFAULT_RETRY, ...o.retry };
    this.#pollMs = o.pollMs ?? 500;
    this.#clock = o.clock ?? systemClock;
    this.#random = o.random ?? Math.random;
    this.#log = o.log;
    this.#lock = o.lock ?? true;
    this.#status = {
      node_id: o.nodeId, sink: o.sink.name, state: "new", pos: 0, committed: 0, backlog: 0, backlog_by_priority: {}, confirmed: 0, sent_records: 0,
      batches: 0, retries: 0, consecutive_failures: 0, dead_lettered: 0, partial_rejected: 0, records_in_flight: 0, bytes_in_flight: 0, last_error: null, last_success_at: null,
    };
  }

  /** A snapshot of the exporter's counters. */
  status(): ExporterStatus {
    const byPriority: Record<string, number> = {};
    for (let l = LEVELS - 1; l >= 0; l--) if ((this.#pending[l] ?? 0) > 0) byPriority[String(l)] = this.#pending[l] ?? 0;
    return { ...this.#status, pos: this.#pos, committed: this.#known, backlog: this.#backlog(), backlog_by_priority: byPriority, last_error: this.#status.last_error ? { ...this.#status.last_error } : null };
  }

  #backlog(): number {
    return this.#pending.reduce((a, b) => a + b, 0);
  }

  #iso(): string {
    return isoTime(this.#clock);
  }

  async #init(): Promise<void> {
    if (this.#closed) throw new ExportError("EXPORT_INCOMPLETE", "this exporter is closed", "create a new Exporter");
    if (this.#initialised) return;
    if (this.#lock && !this.#release) {
      const dir = this.source.dir;
      this.#release = await besideWrite(dir, "the exporter's lock", () =>
        acquireFileLock(exporterLockPath(dir), {
          timeoutMs: 2_000,
          onTimeout: (pid) => new ExportError("EXPORT_LOCKED", `another exporter (process ${pid ?? "unknown"}) is draining the WAL in ${dir}`,
            "one exporter per WAL: stop the other one (two would fight over telemetry.pos)", { details: { pid: pid ?? null } }),
        }),
      );
    }
    if (this.#lock) await removeStalePosTmp(this.source.dir);
    const read = await readPos(this.source.dir);
    const committed = await this.source.committed();
    this.#generation = await this.source.generation();
    let pos = 0;
    if (read.kind === "ok" && read.generation === this.#generation) pos = read.pos;
    if (read.kind === "ok" && read.generation !== this.#generation) {
      // A first run or an operator reset started a new generation: the old position names another WAL's seqs.
      // Not followed (and not deleted: it is overwritten by the first position of this generation).
      this.#log?.warn({ dir: this.source.dir, pos: read.pos, pos_generation: read.generation, generation: this.#generation }, "EXPORT_POS_OTHER_GENERATION: telemetry.pos belongs to another WAL generation; exporting this generation from seq 1");
    }
    if (read.kind === "corrupt") this.#log?.warn({ dir: this.source.dir, length: read.length }, "EXPORT_POS_CORRUPT: telemetry.pos is not 8 or 24 bytes; exporting again from seq 1 (receivers dedupe)");
    if (pos > committed) {
      this.#log?.warn({ dir: this.source.dir, pos, committed }, "EXPORT_POS_AHEAD: telemetry.pos is past the committed WAL of its generation (the WAL lost entries or was replaced); exporting from seq 1");
      pos = 0;
    }
    this.#reset(pos);
    this.#initialised = true;
  }

  #reset(pos: number): void {
    this.#pos = pos;
    this.#known = pos;
    this.#bits = new SeqBitset(pos);
    this.#pending.fill(0);
    this.#last.fill(pos);
    this.#done.fill(pos);
  }

  /** Reads the safe point; censuses entries committed since the last look (levels only; nothing kept). */
  async #refresh(): Promise<void> {
    const committed = await this.source.committed();
    if (committed < this.#known) {
      this.#log?.warn({ dir: this.source.dir, committed, known: this.#known }, "EXPORT_WAL_SHRANK: the committed WAL is shorter than before (reset?); exporting from seq 1");
      this.#reset(0);
    }
    if (committed <= this.#known) return;
    // Counted into copies and applied only once the whole range was read: a scan that fails halfway changes nothing.
    const pending = [...this.#pending];
    const last = [...this.#last];
    const done = [...this.#done];
    // Seqs no frame carries (gaps a legacy upgrade accepted, OBS-4) have nothing to deliver: confirmed as soon as they are seen.
    const absent: [number, number][] = [];
    let prev = this.#known;
    for await (const page of this.source.scan(this.#known + 1, committed)) {
      for (const e of page) {
        if (e.seq > prev + 1) absent.push([prev + 1, e.seq - 1]);
        prev = e.seq;
        const l = priorityOf(e.event);
        if ((pending[l] ?? 0) === 0) done[l] = Math.max(done[l] ?? 0, e.seq - 1);
        pending[l] = (pending[l] ?? 0) + 1;
        last[l] = e.seq;
      }
    }
    this.#pending = pending;
    this.#last = last;
    this.#done = done;
    this.#known = committed;
    for (const [a, b] of absent) for (let seq = a; seq <= b; seq++) this.#bits.set(seq);
  }

  #nextLevel(): number {
    for (let l = LEVELS - 1; l >= 0; l--) if ((this.#pending[l] ?? 0) > 0) return l;
    return -1;
  }

  /** The next batch of level `l`: unconfirmed entries in seq order from done[l]. `scanEnd`: all level-l entries ≤ it are in the batch or confirmed. */
  async #collect(l: number): Promise<{ batch: ExportRecord[]; scanEnd: number }> {
    const batch: ExportRecord[] = [];
    let bytes = 0;
    const last = this.#last[l] ?? 0;
    const from = Math.max(this.#done[l] ?? 0, this.#bits.prefix) + 1;
    let scanEnd = last;
    const bits = this.#bits;
    scan: for await (const page of this.source.scan(from, last, { skip: (seq) => bits.has(seq) })) {
      for (const e of page) {
        if (priorityOf(e.event) !== l) continue;
        if (batch.length > 0 && bytes + e.bytes > this.#maxBytes) {
          scanEnd = e.seq - 1;
          break scan;
        }
        batch.push(toExportRecord(e, this.nodeId, e.bytes, this.#generation));
        bytes += e.bytes;
        if (batch.length >= this.#batchSize) {
          scanEnd = e.seq;
          break scan;
        }
      }
    }
    return { batch, scanEnd };
  }

  /** Marks records confirmed and persists the new prefix if it moved. */
  async #confirm(records: readonly ExportRecord[]): Promise<number> {
    let n = 0;
    for (const r of records) {
      if (this.#bits.set(r.seq)) {
        this.#pending[r.priority] = (this.#pending[r.priority] ?? 0) - 1;
        n += 1;
      }
    }
    this.#status.confirmed += n;
    await this.#persist();
    return n;
  }

  /** Writes telemetry.pos when the confirmed prefix is past it (also retries a position write that failed earlier). */
  async #persist(): Promise<void> {
    const prefix = Math.min(this.#bits.advance(), this.#known);
    if (prefix > this.#pos) {
      await writePos(this.source.dir, { seq: prefix, generation: this.#generation });
      this.#pos = prefix;
    }
  }

  /**
   * Sends a batch. A permanent refusal (SinkRejected) of a batch of several
   * records splits it in halves and sends each, so one poison record costs
   * O(log n) requests and only it is refused; a refused single record is
   * written to `<dir>.rejected.jsonl` beside the WAL directory (fsynced) and then counts as handled.
   * Anything else thrown propagates: not delivered, retry later.
   */
  async #deliver(batch: readonly ExportRecord[], signal: AbortSignal | undefined, counts: { confirmed: number; deadLettered: number }): Promise<void> {
    this.#status.records_in_flight = batch.length;
    this.#status.bytes_in_flight = batch.reduce((a, r) => a + r.bytes, 0);
    try {
      this.#status.sent_records += batch.length;
      this.#status.batches += 1;
      const res = signal ? await this.sink.send(batch, { signal }) : await this.sink.send(batch);
      if (res?.partialRejected) {
        this.#status.partial_rejected += res.partialRejected.count;
        this.#log?.warn({ sink: this.sink.name, count: res.partialRejected.count, first_seq: batch[0]?.seq, last_seq: batch[batch.length - 1]?.seq, message: res.partialRejected.message }, "EXPORT_PARTIAL_SUCCESS: the receiver dropped some records of an accepted batch");
        await appendRejected(this.source.dir, [{
          kind: "partial_success", rejected_at: this.#iso(), sink: this.sink.name, node_id: this.nodeId, reason: res.partialRejected.message,
          seqs: batch.map((r) => r.seq), rejected_count: res.partialRejected.count,
        }]);
      }
    } catch (e) {
      if (!(e instanceof SinkRejected)) throw e;
      if (signal?.aborted) throw e;
      if (batch.length > 1) {
        const mid = Math.ceil(batch.length / 2);
        await this.#deliver(batch.slice(0, mid), signal, counts);
        await this.#deliver(batch.slice(mid), signal, counts);
        return;
      }
      const r = batch[0] as ExportRecord;
      const line: RejectedLine = {
        kind: "rejected", rejected_at: this.#iso(), sink: e.sink, node_id: r.nodeId, status: e.status, reason: e.message,
        seq: r.seq, event_name: r.eventName, priority: r.priority, event: r.event,
      };
      await appendRejected(this.source.dir, [line]);
      this.#status.dead_lettered += 1;
      counts.deadLettered += 1;
      this.#log?.error({ seq: r.seq, sink: e.sink, status: e.status, reason: e.message }, "EXPORT_RECORD_REJECTED: the receiver refused this record; written beside the WAL directory, <dir>.rejected.jsonl");
    } finally {
      this.#status.records_in_flight = 0;
      this.#status.bytes_in_flight = 0;
    }
    counts.confirmed += await this.#confirm(batch);
    this.#status.last_success_at = this.#iso();
  }

  /**
   * Sends batches until every committed entry is confirmed (caughtUp), a send
   * fails (error set: the sink is down, slow or refusing for now), `signal`
   * aborts, or `maxBatches` were sent. Never retries by itself: run() does.
   * A failed telemetry.pos write after a confirmed batch is reported like a
   * failed send (the next call writes it). WAL read errors (a fail-hard WAL) throw.
   */
  async drainOnce(o: { signal?: AbortSignal; maxBatches?: number } = {}): Promise<DrainResult> {
    if (this.#busy) throw new Error("Exporter.drainOnce is already running on this exporter (one drain at a time)");
    this.#busy = true;
    try {
      return await this.#drain(o);
    } finally {
      this.#busy = false;
    }
  }

  async #drain(o: { signal?: AbortSignal; maxBatches?: number }): Promise<DrainResult> {
    await this.#init();
    const counts = { confirmed: 0, deadLettered: 0 };
    let batches = 0;
    const result = (extra: Partial<DrainResult> = {}): DrainResult => ({
      caughtUp: false, confirmed: counts.confirmed, deadLettered: counts.deadLettered, batches, pos: this.#pos, committed: this.#known, backlog: this.#backlog(), ...extra,
    });
    for (;;) {
      if (o.signal?.aborted) return result({ aborted: true });
      await this.#refresh();
      const level = this.#nextLevel();
      if (level < 0) {
        await this.#persist();
        if (this.#status.state !== "stopped") this.#status.state = "idle";
        return result({ caughtUp: this.#pos >= this.#known });
      }
      if (o.maxBatches !== undefined && batches >= o.maxBatches) return result();
      const { batch, scanEnd } = await this.#collect(level);
      if (batch.length === 0) {
        // Nothing unconfirmed of this level up to its last seq: the count was stale. Repair, never spin.
        this.#log?.warn({ level, pending: this.#pending[level] }, "EXPORT_PENDING_MISMATCH: no pending entries found for a level with a non-zero count");
        this.#pending[level] = 0;
        continue;
      }
      this.#status.state = "sending";
      batches += 1;
      try {
        await this.#deliver(batch, o.signal, counts);
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        this.#failed(err);
        if (o.signal?.aborted) return result({ aborted: true, error: err });
        return result({ error: err });
      }
      this.#done[level] = Math.max(this.#done[level] ?? 0, scanEnd);
      if (this.#status.consecutive_failures > 0) {
        this.#log?.info?.({ sink: this.sink.name, after_failures: this.#status.consecutive_failures }, "EXPORT_RESUMED: the sink accepts batches again");
        this.#lastLoggedError = undefined;
      }
      this.#status.consecutive_failures = 0;
    }
  }

  #failed(err: Error): void {
    this.#status.consecutive_failures += 1;
    this.#status.last_error = {
      message: err.message, at: this.#iso(),
      ...(err instanceof SinkUnavailable ? { reason: err.reason, ...(err.status === undefined ? {} : { status: err.status }) } : {}),
      ...(err instanceof SinkRejected ? { status: err.status, reason: "rejected" } : {}),
    };
    // One log line per distinct error, then one every 20 failures: an outage does not flood the log.
    if (err.message !== this.#lastLoggedError || this.#status.consecutive_failures % 20 === 0) {
      this.#lastLoggedError = err.message;
      this.#log?.warn({ sink: this.sink.name, error: err.message, consecutive_failures: this.#status.consecutive_failures, backlog: this.#backlog(), pos: this.#pos }, "EXPORT_SINK_UNAVAILABLE: batch not delivered; retrying with backoff");
    }
  }

  /**
   * Drains until `signal` aborts: after a failure it waits a capped exponential
   * backoff with jitter (honouring a receiver's Retry-After up to the cap) and
   * tries again, forever; once caught up it polls for new entries every pollMs.
   */
  async run(signal: AbortSignal, hooks: { onDrain?: (r: DrainResult) => void } = {}): Promise<void> {
    let attempt = 0;
    while (!signal.aborted) {
      let r: DrainResult | undefined;
      let err: unknown;
      try {
        r = await this.drainOnce({ signal });
        hooks.onDrain?.(r);
      } catch (e) {
        err = e;
        this.#failed(e instanceof Error ? e : new Error(String(e)));
      }
      if (signal.aborted) break;
      const failure = err ?? r?.error;
      if (failure !== undefined) {
        attempt += 1;
        this.#status.retries += 1;
        this.#status.state = "backoff";
        await sleep(backoffDelay(attempt, this.#retry, this.#random, failure instanceof SinkUnavailable ? failure.retryAfterMs : undefined), signal);
        continue;
      }
      attempt = 0;
      if (r?.caughtUp || r?.batches === 0) await sleep(this.#pollMs, signal);
    }
    this.#status.state = "stopped";
  }

  /** Releases the exporter lock. Nothing else to flush: the position is persisted as it advances. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#status.state = "stopped";
    await this.#release?.();
    this.#release = undefined;
  }
}
