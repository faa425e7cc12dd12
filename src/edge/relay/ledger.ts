import { mkdir, open as openFile, rename, rm, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { open, type Database, type RootDatabase } from "lmdb";
import { fsyncDir, isoTime, systemClock, type Clock } from "../../lib/index.js";
import { EdgeError } from "../errors.js";
import { diskCost } from "../storage/index.js";
import type { DeliveryState, EvictionReason, PeerIdentity, SegmentId, SegmentInfo, SuccessCondition } from "../types.js";
import { DELIVERY_STATES } from "../types.js";
import {
  abortAttempt, ackAttempt, beginAttempt, deadletterWaiting, deferWaiting, failAttempt, isPending, newDelivery,
  recoverInflight, reofferDeadletter, retryDeadletter, successMet,
  type DeliveryRecord, type RelayErrorInfo, type ReofferReason, type SegmentRecord,
} from "./ledger-records.js";

/**
 * The relay ledger: per (segment, peer) delivery records, per-segment records,
 * the receiver's inbox and its application cursor, in one LMDB environment at
 * `{state_root}/edge/relay/ledger.lmdb` (src/node stateRootPaths().relayLedger).
 *
 * Durability (docs/relay.md "Durability"). lmdb-js on Linux defaults to
 * `overlappingSync: true`, under which a write promise resolves when the
 * transaction is COMMITTED (visible) and only `db.flushed` says when it is on
 * disk: an awaited write could be lost on power failure. We open with
 * `overlappingSync: false` (and never `noSync`, `noMetaSync`, `useWritemap`,
 * `mapAsync`), so LMDB commits the classic way inside the commit: data pages
 * written, fdatasync(data file), then the meta page through an O_DSYNC
 * descriptor — and only then does the promise resolve (checked with strace:
 * writev → fdatasync → pwrite on the O_DSYNC fd → resolution). Every state
 * change runs in `childTransaction`, which is atomic on its own (a throw rolls
 * back its writes; a plain `transaction` callback that throws would leave its
 * earlier puts in the batch) and is committed with the batch it joins.
 */

export interface InboxEntry {
  seq: number;
  segment_id: SegmentId;
  size: number;
  kind: SegmentInfo["kind"];
  from: PeerIdentity;
  received_at: string;
  /** Further pushes of the same segment (acknowledged again, never delivered twice). */
  duplicates: number;
}

export interface PurgedDelivery {
  segment_id: SegmentId;
  peer_id: string;
  deadlettered_at: string | null;
  last_error: RelayErrorInfo | null;
}

export interface PurgeResult {
  dry_run: boolean;
  purged: PurgedDelivery[];
  /** Segments no delivery needs any more once these dead letters are gone (the executor may drop their bytes). */
  released_segments: { segment_id: SegmentId; delivered: boolean }[];
  /** A retention sweep that purged nothing because the wall clock jumped ahead of the monotonic one. */
  skipped?: { reason: "clock_jump"; clock_jump_ms: number };
}

export interface PurgeLogEntry {
  at: string;
  reason: "operator" | "retention";
  count: number;
  /** The first {@link PURGE_LOG_ITEMS} purged deliveries. */
  items: PurgedDelivery[];
}

/** A delivery settled because its peer left edge.toml: its state when settled (never counted as acked). */
export interface SettledDelivery {
  segment_id: SegmentId;
  peer_id: string;
  state: DeliveryState;
  attempts: number;
  last_error: RelayErrorInfo | null;
}

/**
 * One settlement: the deliveries owed to (or made to) a peer that is no longer
 * configured, taken out of the queue on start with outcome `peer_removed`.
 */
export interface SettleLogEntry {
  at: string;
  outcome: "peer_removed";
  peer_id: string;
  count: number;
  /** Of these, how many had not been acknowledged (they never will be). */
  unacked: number;
  /** The first {@link PURGE_LOG_ITEMS} settled deliveries. */
  items: SettledDelivery[];
}

export interface SettleResult {
  settled: SettleLogEntry[];
  /** Segments whose success condition the remaining peers now meet. */
  newly_delivered: SegmentId[];
  /** Undelivered segments no remaining peer is owed: their bytes are no longer needed. */
  released_segments: PurgeResult["released_segments"];
}

/**
 * An inbox entry the application did not apply and the cursor passed:
 * `refused` — the application refused it for good (a relayed release failing
 * this node's rules, exit 4); `abandoned` — applying it kept failing
 * (MAX_APPLY_ATTEMPTS), so it was passed rather than block every later arrival.
 */
export interface InboxRejection {
  seq: number;
  segment_id: SegmentId;
  kind: SegmentInfo["kind"];
  from: string;
  outcome: "refused" | "abandoned";
  /** The refusal's code (abandoned: INBOX_ENTRY_ABANDONED, the last failure's code in `cause_code`). */
  code: string;
  cause_code?: string;
  message: string;
  attempts: number;
  at: string;
  /** What a release entry claims to carry (read from its bytes, NOT verified): null when unreadable. */
  statement_digest?: string | null;
  sequence?: number | null;
}

/** Counts of passed inbox entries by kind, outcome and code (monotonic, durable). */
export interface InboxRejectionCount {
  kind: SegmentInfo["kind"];
  outcome: InboxRejection["outcome"];
  code: string;
  count: number;
}

export interface LedgerSummary {
  queue: Record<DeliveryState, number> & { total: number };
  peers: Record<string, { queue: Record<DeliveryState, number>; last_error: (RelayErrorInfo & { at: string; segment_id: SegmentId }) | null }>;
  segments: number;
  delivered_segments: number;
}

export interface PurgeFilter {
  segment_id?: SegmentId;
  peer_id?: string;
  force: boolean;
  /** Only dead letters dead-lettered at or before this instant (ms); the retention sweep uses it. */
  deadletteredBefore?: number;
}

/** See the durability note at the top of this file and docs/relay.md "Durability". */
const LMDB_OPTIONS = { noSubdir: true, overlappingSync: false, noSync: false, noMetaSync: false, useWritemap: false, maxDbs: 8 } as const;
const CREATING = ".creating";

/**
 * A new environment is built under `<path>.creating`, committed once, closed,
 * fsync'ed, renamed into place and its directory fsync'ed: so `path` exists only
 * complete. A power cut while LMDB lays out a fresh file can leave zero-filled
 * or torn meta pages, which lmdb-js 3.5.6 does not reject but crashes on
 * (SIGSEGV, found by the ledger power-loss harness); here such a leftover is
 * only ever the `.creating` file, removed by the next open.
 */
async function createAtomically(path: string): Promise<void> {
  const exists = await stat(path).then(() => true, () => false);
  const temp = path + CREATING;
  await rm(temp, { force: true });
  await rm(temp + "-lock", { force: true });
  if (exists) return;
  const env = open({ path: temp, ...LMDB_OPTIONS });
  await env.childTransaction(() => { void env.put("created", true); });
  await env.close();
  const fh = await openFile(temp, "r+");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(temp, path);
  await fsyncDir(dirname(path));
  await rm(temp + "-lock", { force: true });
}

type DeliveryKey = [SegmentId, string];
type DueKey = [number, SegmentId, string];

const PURGE_LOG_LIMIT = 50;
const PURGE_LOG_ITEMS = 100;
/** The inbox_ids key of an id's `release` entry when its first entry has another kind (never a segment id: those are 64 hex digits). */
const releaseEntryKey = (id: SegmentId): string => `release-entry:${id}`;

/** A retention sweep refuses to purge when the wall clock ran this much ahead of the monotonic clock since the last one. */
export const MAX_SWEEP_CLOCK_JUMP_MS = 3_600_000;

const META = {
  inboxNext: "inbox_next_seq", cursor: "inbox_cursor", delivered: "delivered_count", purgeLog: "purge_log",
  settleLog: "peer_settle_log", inboxRejected: "inbox_rejected", inboxRejectedCounts: "inbox_rejected_counts",
  quotaDay: "quota_day",
} as const;
/** Settlements kept (each names one removed peer); a settlement lists its first {@link PURGE_LOG_ITEMS} deliveries. */
const SETTLE_LOG_LIMIT = 50;
/** Inbox entries not applied that status lists (the newest); the counts by code are kept in full. */
export const INBOX_REJECTED_LIMIT = 50;

/** The bandwidth limiter's daily quota use (src/edge/relay/bandwidth.ts QuotaDay), kept here so a restart keeps it. */
export interface QuotaDayRecord {
  window_start: number;
  used_bytes: number;
}

function zeroQueue(): Record<DeliveryState, number> {
  return Object.fromEntries(DELIVERY_STATES.map((s) => [s, 0])) as Record<DeliveryState, number>;
}

function isWaiting(state: DeliveryState): boolean {
  return state === "scheduled" || state === "failed";
}

export class RelayLedger {
  readonly path: string;
  private readonly root: RootDatabase;
  private readonly segments: Database<SegmentRecord, SegmentId>;
  private readonly deliveries: Database<DeliveryRecord, DeliveryKey>;
  private readonly dueIndex: Database<true, DueKey>;
  private readonly inboxDb: Database<InboxEntry, number>;
  private readonly inboxIds: Database<number, SegmentId>;
  private readonly meta: Database<unknown, string>;
  private readonly clock: Clock;
  /** Wall clock and monotonic clock at open or at the last retention sweep (purgeExpired's sanity bound). */
  private sweepAnchor: { wall: number; mono: number };
  private closed = false;
  private readOnly = false;
  /** Per sending peer, the disk cost of its arrivals above the application cursor (in memory; rebuilt at open). */
  private readonly unconsumed = new Map<string, number>();
  private recoveredOnOpen: readonly DeliveryRecord[] = [];

  private constructor(path: string, root: RootDatabase, clock: Clock, private readonly monotonic: () => number) {
    this.path = path;
    this.root = root;
    this.clock = clock;
    this.sweepAnchor = { wall: clock.now(), mono: monotonic() };
    this.segments = root.openDB({ name: "segments" });
    this.deliveries = root.openDB({ name: "deliveries" });
    this.dueIndex = root.openDB({ name: "due" });
    this.inboxDb = root.openDB({ name: "inbox" });
    this.inboxIds = root.openDB({ name: "inbox_ids" });
    this.meta = root.openDB({ name: "meta" });
  }

  /** Opens (creating) the ledger and returns interrupted `inflight` deliveries to `failed`, counting the attempt. */
  static async open(path: string, opts: LedgerOptions = {}): Promise<RelayLedger> {
    const clock = opts.clock ?? systemClock;
    let root: RootDatabase;
    try {
      await mkdir(dirname(path), { recursive: true });
      await createAtomically(path);
      root = open({ path, ...LMDB_OPTIONS });
    } catch (err) {
      throw new EdgeError("LEDGER_UNAVAILABLE", `cannot open the relay ledger at ${path}: ${(err as Error).message}`, { cause: err });
    }
    const ledger = new RelayLedger(path, root, clock, opts.monotonic ?? (() => performance.now()));
    ledger.recoveredOnOpen = await ledger.recoverInflight();
    for (const e of ledger.inbox(ledger.cursor(), Number.MAX_SAFE_INTEGER)) ledger.countUnconsumed(e, 1);
    return ledger;
  }

  /**
   * Opens an existing ledger read-only and recovers nothing: for inspecting it
   * beside a running edged (LMDB serves readers in other processes a
   * consistent snapshot). Every change through this handle fails.
   */
  static openReadOnly(path: string): RelayLedger {
    let root: RootDatabase;
    try {
      root = open({ path, ...LMDB_OPTIONS, readOnly: true });
    } catch (err) {
      throw new EdgeError("LEDGER_UNAVAILABLE", `cannot open the relay ledger at ${path} read-only: ${(err as Error).message}`, { cause: err });
    }
    const ledger = new RelayLedger(path, root, systemClock, () => performance.now());
    ledger.readOnly = true;
    return ledger;
  }

  /** Deliveries found `inflight` when the ledger was opened (a crash cut their attempt short); now `failed`. */
  get recovered(): readonly DeliveryRecord[] {
    return this.recoveredOnOpen;
  }

  private now(): string {
    return isoTime(this.clock);
  }

  private change<T>(fn: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new EdgeError("LEDGER_UNAVAILABLE", `the relay ledger at ${this.path} is closed`));
    if (this.readOnly) return Promise.reject(new EdgeError("LEDGER_UNAVAILABLE", `the relay ledger at ${this.path} is open read-only`));
    return this.root.childTransaction(fn);
  }

  /** Writes a delivery and keeps the due index (scheduled and failed, by next attempt) in step. */
  private putDelivery(prev: DeliveryRecord | undefined, next: DeliveryRecord): void {
    if (prev !== undefined && isWaiting(prev.state) && prev.next_attempt_at !== null) {
      void this.dueIndex.remove([Date.parse(prev.next_attempt_at), prev.segment_id, prev.peer_id]);
    }
    if (isWaiting(next.state) && next.next_attempt_at !== null) {
      void this.dueIndex.put([Date.parse(next.next_attempt_at), next.segment_id, next.peer_id], true);
    }
    void this.deliveries.put([next.segment_id, next.peer_id], next);
  }

  private removeDelivery(prev: DeliveryRecord): void {
    if (isWaiting(prev.state) && prev.next_attempt_at !== null) void this.dueIndex.remove([Date.parse(prev.next_attempt_at), prev.segment_id, prev.peer_id]);
    void this.deliveries.remove([prev.segment_id, prev.peer_id]);
  }

  private mustGet(segment: SegmentId, peer: string): DeliveryRecord {
    const d = this.deliveries.get([segment, peer]);
    if (d === undefined) throw new EdgeError("DELIVERY_STATE_CONFLICT", `no delivery of segment ${segment} to peer ${peer} in the ledger`, { details: { segment_id: segment, peer_id: peer } });
    return d;
  }

  private transition(segment: SegmentId, peer: string, step: (d: DeliveryRecord, now: string) => DeliveryRecord): Promise<DeliveryRecord> {
    return this.change(() => {
      const prev = this.mustGet(segment, peer);
      const next = step(prev, this.now());
      this.putDelivery(prev, next);
      return next;
    });
  }

  private async recoverInflight(): Promise<DeliveryRecord[]> {
    const stuck = this.deliveriesWhere((d) => d.state === "inflight");
    if (stuck.length === 0) return [];
    return this.change(() => stuck.map((d) => {
      const prev = this.mustGet(d.segment_id, d.peer_id);
      const next = recoverInflight(prev, this.now());
      this.putDelivery(prev, next);
      return next;
    }));
  }

  // ------------------------------------------------------------ sender side

  /**
   * Records a segment and schedules it to each peer (one transaction). Idempotent:
   * enqueuing the same content again adds only peers it was not yet scheduled to.
   */
  schedule(info: SegmentInfo, peers: readonly string[], condition: SuccessCondition): Promise<{ segment: SegmentRecord; created: boolean; added: string[] }> {
    return this.change(() => {
      const now = this.now();
      const existing = this.segments.get(info.id);
      const added = peers.filter((p) => this.deliveries.get([info.id, p]) === undefined);
      for (const p of added) this.putDelivery(undefined, newDelivery(info.id, p, now));
      const segment: SegmentRecord = existing === undefined
        ? { info, peers: [...peers], success_condition: condition, enqueued_at: now, delivered_at: null }
        : { ...existing, peers: [...new Set([...existing.peers, ...peers])] };
      void this.segments.put(info.id, segment);
      return { segment, created: existing === undefined, added };
    });
  }

  segment(id: SegmentId): SegmentRecord | undefined {
    return this.segments.get(id);
  }

  delivery(segment: SegmentId, peer: string): DeliveryRecord | undefined {
    return this.deliveries.get([segment, peer]);
  }

  deliveriesWhere(pred: (d: DeliveryRecord) => boolean = () => true): DeliveryRecord[] {
    const out: DeliveryRecord[] = [];
    for (const { value } of this.deliveries.getRange()) if (pred(value)) out.push(value);
    return out;
  }

  /** The deliveries of one segment (its peers' records; point reads, no scan). */
  deliveriesOf(segment: SegmentId): DeliveryRecord[] {
    const peers = this.segments.get(segment)?.peers ?? [];
    return peers.map((p) => this.deliveries.get([segment, p])).filter((d): d is DeliveryRecord => d !== undefined);
  }

  segmentsList(): SegmentRecord[] {
    return [...this.segments.getRange()].map((e) => e.value);
  }

  /** Deliveries due at `nowMs` (scheduled or failed, next attempt reached), earliest first; `skip` filters (busy peers). */
  due(nowMs: number, limit: number, skip: (d: { segment_id: SegmentId; peer_id: string }) => boolean = () => false): DeliveryRecord[] {
    const out: DeliveryRecord[] = [];
    for (const { key } of this.dueIndex.getRange()) {
      if (out.length >= limit || key[0] > nowMs) break;
      const ref = { segment_id: key[1], peer_id: key[2] };
      if (skip(ref)) continue;
      const d = this.deliveries.get([key[1], key[2]]);
      if (d !== undefined && isWaiting(d.state)) out.push(d);
    }
    return out;
  }

  /** The earliest next attempt among waiting deliveries (ms), if any. */
  nextDueAt(): number | undefined {
    for (const { key } of this.dueIndex.getRange({ limit: 1 })) return key[0];
    return undefined;
  }

  begin(segment: SegmentId, peer: string): Promise<DeliveryRecord> {
    return this.transition(segment, peer, beginAttempt);
  }

  /** The peer acknowledged: acked, and the segment delivered when this meets its success condition. */
  ack(segment: SegmentId, peer: string, duplicate: boolean): Promise<{ delivery: DeliveryRecord; segment: SegmentRecord | undefined; newlyDelivered: boolean }> {
    return this.change(() => {
      const now = this.now();
      const prev = this.mustGet(segment, peer);
      const delivery = ackAttempt(prev, now, duplicate);
      this.putDelivery(prev, delivery);
      const seg = this.segments.get(segment);
      if (seg === undefined || seg.delivered_at !== null) return { delivery, segment: seg, newlyDelivered: false };
      const states = seg.peers.map((p) => (p === peer ? delivery.state : this.deliveries.get([segment, p])?.state));
      if (!successMet(seg.success_condition, states)) return { delivery, segment: seg, newlyDelivered: false };
      const delivered = { ...seg, delivered_at: now };
      void this.segments.put(segment, delivered);
      void this.meta.put(META.delivered, ((this.meta.get(META.delivered) as number | undefined) ?? 0) + 1);
      return { delivery, segment: delivered, newlyDelivered: true };
    });
  }

  /** A failed attempt: `retryAt` (ms) schedules the next, `null` dead-letters. */
  fail(segment: SegmentId, peer: string, error: RelayErrorInfo, retryAt: number | null): Promise<DeliveryRecord> {
    return this.transition(segment, peer, (d, now) => failAttempt(d, now, error, retryAt));
  }

  abort(segment: SegmentId, peer: string): Promise<DeliveryRecord> {
    return this.transition(segment, peer, abortAttempt);
  }

  defer(segment: SegmentId, peer: string, untilMs: number): Promise<DeliveryRecord> {
    return this.transition(segment, peer, (d, now) => deferWaiting(d, now, untilMs));
  }

  deadletter(segment: SegmentId, peer: string, error: RelayErrorInfo): Promise<DeliveryRecord> {
    return this.transition(segment, peer, (d, now) => deadletterWaiting(d, now, error));
  }

  /**
   * Settles every delivery to a peer not in `peers` (dropped from edge.toml),
   * in one transaction: the delivery leaves the queue (so status totals are
   * the current peers' sum), the peer leaves its segments' peer lists (so the
   * success condition is judged over the current peers: an `all_peers`
   * segment the others acknowledged becomes delivered), and the settlement is
   * logged per peer with outcome `peer_removed` (an unacknowledged delivery is
   * never counted as acked). An undelivered segment no current peer is owed
   * loses its record (its bytes are released); a delivered one keeps it, so
   * LRU can still evict its bytes.
   */
  settleRemovedPeers(peers: readonly string[]): Promise<SettleResult> {
    const current = new Set(peers);
    const gone = this.deliveriesWhere((d) => !current.has(d.peer_id));
    if (gone.length === 0) return Promise.resolve({ settled: [], newly_delivered: [], released_segments: [] });
    return this.change(() => {
      const now = this.now();
      const settled: SettleLogEntry[] = [];
      for (const peer of [...new Set(gone.map((d) => d.peer_id))].sort()) {
        const mine = gone.filter((d) => d.peer_id === peer);
        const items = mine.map((d) => ({ segment_id: d.segment_id, peer_id: d.peer_id, state: d.state, attempts: d.attempts, last_error: d.last_error }));
        settled.push({ at: now, outcome: "peer_removed", peer_id: peer, count: mine.length, unacked: mine.filter((d) => d.state !== "acked").length, items: items.slice(0, PURGE_LOG_ITEMS) });
      }
      for (const d of gone) this.removeDelivery(this.mustGet(d.segment_id, d.peer_id));
      const newly: SegmentId[] = [];
      const released: PurgeResult["released_segments"] = [];
      for (const id of new Set(gone.map((d) => d.segment_id))) {
        const seg = this.segments.get(id);
        if (seg === undefined) continue;
        const rest = seg.peers.filter((p) => current.has(p));
        let next: SegmentRecord = { ...seg, peers: rest };
        if (seg.delivered_at === null && successMet(seg.success_condition, rest.map((p) => this.deliveries.get([id, p])?.state))) {
          next = { ...next, delivered_at: now };
          void this.meta.put(META.delivered, ((this.meta.get(META.delivered) as number | undefined) ?? 0) + 1);
          newly.push(id);
        }
        if (next.delivered_at === null && rest.length === 0) {
          void this.segments.remove(id);
          released.push({ segment_id: id, delivered: false });
        } else {
          void this.segments.put(id, next);
        }
      }
      const log = (this.meta.get(META.settleLog) as SettleLogEntry[] | undefined) ?? [];
      void this.meta.put(META.settleLog, [...log, ...settled].slice(-SETTLE_LOG_LIMIT));
      return { settled, newly_delivered: newly, released_segments: released };
    });
  }

  /** Settlements of deliveries to removed peers, oldest first (bounded). */
  settleLog(): SettleLogEntry[] {
    return (this.meta.get(META.settleLog) as SettleLogEntry[] | undefined) ?? [];
  }

  // ------------------------------------------------------------ dead letters

  deadletters(limit: number): DeliveryRecord[] {
    return this.deliveriesWhere((d) => d.state === "deadletter")
      .sort((a, b) => (a.deadlettered_at ?? "").localeCompare(b.deadlettered_at ?? ""))
      .slice(0, limit);
  }

  inspect(segment: SegmentId, peer: string): DeliveryRecord {
    const d = this.deliveries.get([segment, peer]);
    if (d === undefined || d.state !== "deadletter") {
      throw new EdgeError("DEADLETTER_NOT_FOUND", `no dead letter for segment ${segment} to peer ${peer}${d ? ` (the delivery is ${d.state})` : ""}`, { details: { segment_id: segment, peer_id: peer } });
    }
    return d;
  }

  /** Sends a dead letter back to `scheduled` with fresh attempts; its history stays. */
  async retry(segment: SegmentId, peer: string): Promise<DeliveryRecord> {
    this.inspect(segment, peer);
    return this.transition(segment, peer, retryDeadletter);
  }

  /**
   * edged's own retry of dead-lettered `release` deliveries (docs/relay.md "Re-offering a release"): those
   * matching `filter` go back to `scheduled` with fresh attempts, a `reoffered` history entry saying why.
   */
  reofferReleases(filter: { peer_id?: string; segment_id?: SegmentId; when?: (d: DeliveryRecord) => boolean }, reason: ReofferReason): Promise<DeliveryRecord[]> {
    return this.change(() => {
      const out: DeliveryRecord[] = [];
      const ids = filter.segment_id !== undefined ? [filter.segment_id] : [...this.segments.getKeys()];
      for (const id of ids) {
        const seg = this.segments.get(id);
        if (seg?.info.kind !== "release") continue;
        for (const peer of filter.peer_id !== undefined ? [filter.peer_id] : seg.peers) {
          const prev = this.deliveries.get([id, peer]);
          if (prev?.state !== "deadletter" || (filter.when !== undefined && !filter.when(prev))) continue;
          const next = reofferDeadletter(prev, this.now(), reason);
          this.putDelivery(prev, next);
          out.push(next);
        }
      }
      return out;
    });
  }

  private purgeMatches(f: PurgeFilter): DeliveryRecord[] {
    return this.deliveriesWhere((d) => d.state === "deadletter"
      && (f.segment_id === undefined || d.segment_id === f.segment_id)
      && (f.peer_id === undefined || d.peer_id === f.peer_id)
      && (f.deadletteredBefore === undefined || (d.deadlettered_at !== null && Date.parse(d.deadlettered_at) <= f.deadletteredBefore)));
  }

  /** Segments none of whose remaining deliveries (after removing `gone`) is pending or dead-lettered. */
  private released(gone: readonly DeliveryRecord[]): PurgeResult["released_segments"] {
    const goneKeys = new Set(gone.map((d) => `${d.segment_id}/${d.peer_id}`));
    const out: PurgeResult["released_segments"] = [];
    for (const id of new Set(gone.map((d) => d.segment_id))) {
      const rest = this.deliveriesOf(id).filter((d) => !goneKeys.has(`${d.segment_id}/${d.peer_id}`));
      if (rest.some((d) => isPending(d.state) || d.state === "deadletter")) continue;
      out.push({ segment_id: id, delivered: this.segments.get(id)?.delivered_at != null });
    }
    return out;
  }

  /**
   * Purges dead letters matching the filter. Without `force` it is a dry run:
   * it returns what would be purged and changes nothing. A purge is logged
   * (`purgeLog()`); a segment left with no delivery at all loses its record.
   */
  async purge(f: PurgeFilter, reason: PurgeLogEntry["reason"] = "operator"): Promise<PurgeResult> {
    if (!f.force) {
      const matches = this.purgeMatches(f);
      return { dry_run: true, purged: matches.map(purgedView), released_segments: this.released(matches) };
    }
    return this.change(() => {
      const matches = this.purgeMatches(f);
      const released = this.released(matches);
      for (const d of matches) this.removeDelivery(d);
      for (const id of new Set(matches.map((d) => d.segment_id))) {
        if (this.deliveriesOf(id).length === 0) void this.segments.remove(id);
      }
      const purged = matches.map(purgedView);
      if (purged.length > 0) {
        const log = (this.meta.get(META.purgeLog) as PurgeLogEntry[] | undefined) ?? [];
        const entry: PurgeLogEntry = { at: this.now(), reason, count: purged.length, items: purged.slice(0, PURGE_LOG_ITEMS) };
        void this.meta.put(META.purgeLog, [...log, entry].slice(-PURGE_LOG_LIMIT));
      }
      return { dry_run: false, purged, released_segments: released };
    });
  }

  /**
   * Dead letters older than the retention period are purged (and logged with
   * reason `retention`). Purging is final, so a wall clock that jumped
   * forward must not decide it: when the wall clock advanced more than
   * MAX_SWEEP_CLOCK_JUMP_MS beyond the monotonic clock since the last sweep
   * (or open), this sweep purges nothing and says so (`skipped`); the next
   * sweep measures from here, so a clock that really moved on purges then.
   * A wrong NTP server for a minute, then corrected, purges nothing.
   */
  purgeExpired(retentionMs: number): Promise<PurgeResult> {
    const wall = this.clock.now();
    const mono = this.monotonic();
    const jump = wall - this.sweepAnchor.wall - (mono - this.sweepAnchor.mono);
    this.sweepAnchor = { wall, mono };
    if (jump > MAX_SWEEP_CLOCK_JUMP_MS) {
      return Promise.resolve({ dry_run: false, purged: [], released_segments: [], skipped: { reason: "clock_jump", clock_jump_ms: Math.round(jump) } });
    }
    return this.purge({ force: true, deadletteredBefore: wall - retentionMs }, "retention");
  }

  purgeLog(): PurgeLogEntry[] {
    return (this.meta.get(META.purgeLog) as PurgeLogEntry[] | undefined) ?? [];
  }

  summary(): LedgerSummary {
    const queue = { ...zeroQueue(), total: 0 };
    const peers: LedgerSummary["peers"] = {};
    for (const d of this.deliveriesWhere()) {
      queue[d.state] += 1;
      queue.total += 1;
      const p = (peers[d.peer_id] ??= { queue: zeroQueue(), last_error: null });
      p.queue[d.state] += 1;
      if (d.last_error !== null && (p.last_error === null || p.last_error.at < d.updated_at)) {
        p.last_error = { ...d.last_error, at: d.updated_at, segment_id: d.segment_id };
      }
    }
    let segments = 0;
    for (const _ of this.segments.getKeys()) segments += 1;
    return { queue, peers, segments, delivered_segments: (this.meta.get(META.delivered) as number | undefined) ?? 0 };
  }

  // ------------------------------------------------------------ daily quota

  /** The quota day last saved (one record: a new day replaces the old one). */
  quotaDay(): QuotaDayRecord | undefined {
    return this.meta.get(META.quotaDay) as QuotaDayRecord | undefined;
  }

  /** Durably records the day's quota use (resolves after the commit's fsync, like every change). */
  async saveQuotaDay(day: QuotaDayRecord): Promise<void> {
    await this.change(() => { void this.meta.put(META.quotaDay, { window_start: day.window_start, used_bytes: day.used_bytes }); });
  }

  // ------------------------------------------------------------ receiver side

  /**
   * Records an arriving segment in the inbox: the first push of a segment id
   * gets the next sequence number, every later push of it is a duplicate that
   * keeps that number (acknowledged again, never handed to the application twice).
   * One exception, so that the first push's kind header does not decide for
   * the others: a `release` push of an id whose entry has another kind gets its
   * own entry (once), since a peer racing the seed with the release's bytes
   * labelled `data` would otherwise keep the release hook from ever seeing it.
   */
  async receive(info: SegmentInfo, from: PeerIdentity): Promise<{ duplicate: boolean; inbox_seq: number }> {
    const r = await this.change(() => {
      const first = this.inboxIds.get(info.id);
      const firstKind = first === undefined ? undefined : this.inboxDb.get(first)?.kind;
      const key = info.kind === "release" && firstKind !== undefined && firstKind !== "release" ? releaseEntryKey(info.id) : info.id;
      const seen = key === info.id ? first : this.inboxIds.get(key);
      if (seen !== undefined) {
        const entry = this.inboxDb.get(seen);
        if (entry !== undefined) void this.inboxDb.put(seen, { ...entry, duplicates: entry.duplicates + 1 });
        return { duplicate: true, inbox_seq: seen };
      }
      const seq = ((this.meta.get(META.inboxNext) as number | undefined) ?? 1);
      void this.meta.put(META.inboxNext, seq + 1);
      void this.inboxIds.put(key, seq);
      void this.inboxDb.put(seq, { seq, segment_id: info.id, size: info.size, kind: info.kind, from, received_at: this.now(), duplicates: 0 });
      return { duplicate: false, inbox_seq: seq };
    });
    // Counted once committed (a rolled-back transaction adds nothing). The cursor cannot pass a seq before it exists.
    if (!r.duplicate) this.countUnconsumed({ size: info.size, from }, 1);
    return r;
  }

  private countUnconsumed(e: { size: number; from: PeerIdentity }, sign: 1 | -1): void {
    const next = (this.unconsumed.get(e.from.id) ?? 0) + sign * diskCost(e.size);
    if (next > 0) this.unconsumed.set(e.from.id, next);
    else this.unconsumed.delete(e.from.id);
  }

  /**
   * The disk cost (docs/segment-store.md) of `peer`'s arrivals the application
   * has not consumed yet: bytes the store must keep for it. The receiver's
   * sink bounds it per peer, so one peer's unconsumed traffic cannot take the
   * whole store from the others (RelayLedger.releasable never evicts them).
   */
  unconsumedBytesFrom(peer: string): number {
    return this.unconsumed.get(peer) ?? 0;
  }

  /** Inbox entries with a sequence number above `afterSeq`, in order. */
  inbox(afterSeq: number, limit: number): InboxEntry[] {
    return [...this.inboxDb.getRange({ start: afterSeq + 1, limit })].map((e) => e.value);
  }

  /** The application's durable cursor: the highest inbox sequence it has consumed (0 = none). */
  cursor(): number {
    return (this.meta.get(META.cursor) as number | undefined) ?? 0;
  }

  /** The inbox sequence number a segment got on arrival; undefined when it never arrived. */
  inboxSeqOf(id: SegmentId): number | undefined {
    return this.inboxIds.get(id);
  }

  /** Whether any record names this segment (sent: a segment record; received: an inbox entry). Bytes nobody names are orphans. */
  references(id: SegmentId): boolean {
    return this.segments.get(id) !== undefined || this.inboxIds.get(id) !== undefined;
  }

  /**
   * Whether the segment store may drop a segment's bytes at its ceiling, and
   * the reason to record (docs/segment-store.md "Ceiling"): every role the
   * segment has on this node must be finished.
   *   - Sent (a segment record): delivered, and no delivery still pending or
   *     dead-lettered (a one_peer success leaves the other peers their copy; a
   *     dead letter can be retried) — `lru_ceiling`.
   *   - Received (an inbox entry): the application's durable cursor is at or
   *     past its sequence number — `lru_consumed`. A re-push after the eviction
   *     is still a duplicate (the inbox keeps its id), never a second delivery.
   * A segment the ledger knows neither way is kept: it is a put whose record
   * is still being written (orphans are handled at start, removeOrphans).
   */
  releasable(id: SegmentId): EvictionReason | false {
    const seg = this.segments.get(id);
    const seq = this.inboxIds.get(id);
    if (seg === undefined && seq === undefined) return false;
    if (seg !== undefined && (seg.delivered_at === null || this.deliveriesOf(id).some((d) => isPending(d.state) || d.state === "deadletter"))) return false;
    if (seq !== undefined && seq > this.cursor()) return false;
    return seg !== undefined ? "lru_ceiling" : "lru_consumed";
  }

  /** Moves the cursor forward (durably); never backwards, never past the last sequence handed out. */
  async advanceCursor(seq: number): Promise<number> {
    const from = await this.change(() => {
      const current = (this.meta.get(META.cursor) as number | undefined) ?? 0;
      const last = ((this.meta.get(META.inboxNext) as number | undefined) ?? 1) - 1;
      if (!Number.isInteger(seq) || seq < current || seq > last) {
        throw new EdgeError("INBOX_CURSOR_INVALID", `cannot move the inbox cursor from ${current} to ${seq}: it must be an integer from ${current} to ${last}`);
      }
      void this.meta.put(META.cursor, seq);
      return current;
    });
    this.consumed(from, seq);
    return seq;
  }

  /** After the cursor moved from `from` to `to` (committed): those arrivals no longer count against their peers' shares. */
  private consumed(from: number, to: number): void {
    if (to > from) for (const e of this.inbox(from, to - from)) this.countUnconsumed(e, -1);
  }

  /**
   * Moves the cursor past an entry the application did not apply and records
   * why, in one transaction: a crash leaves either both or neither, so an
   * entry is counted once. The list keeps the newest {@link INBOX_REJECTED_LIMIT}.
   */
  async passInboxEntry(r: InboxRejection): Promise<void> {
    const from = await this.change(() => {
      const current = (this.meta.get(META.cursor) as number | undefined) ?? 0;
      const last = ((this.meta.get(META.inboxNext) as number | undefined) ?? 1) - 1;
      if (!Number.isInteger(r.seq) || r.seq < current || r.seq > last) {
        throw new EdgeError("INBOX_CURSOR_INVALID", `cannot pass inbox entry ${r.seq}: the cursor is at ${current} and the last sequence is ${last}`);
      }
      void this.meta.put(META.cursor, r.seq);
      const list = (this.meta.get(META.inboxRejected) as InboxRejection[] | undefined) ?? [];
      void this.meta.put(META.inboxRejected, [...list, r].slice(-INBOX_REJECTED_LIMIT));
      const counts = (this.meta.get(META.inboxRejectedCounts) as InboxRejectionCount[] | undefined) ?? [];
      const hit = counts.find((c) => c.kind === r.kind && c.outcome === r.outcome && c.code === r.code);
      const next = hit ? counts.map((c) => (c === hit ? { ...c, count: c.count + 1 } : c)) : [...counts, { kind: r.kind, outcome: r.outcome, code: r.code, count: 1 }];
      void this.meta.put(META.inboxRejectedCounts, next);
      return current;
    });
    this.consumed(from, r.seq);
  }

  /** Inbox entries passed without being applied (newest {@link INBOX_REJECTED_LIMIT}, oldest first) and the durable counts. */
  inboxRejections(): { entries: InboxRejection[]; counts: InboxRejectionCount[] } {
    return {
      entries: (this.meta.get(META.inboxRejected) as InboxRejection[] | undefined) ?? [],
      counts: (this.meta.get(META.inboxRejectedCounts) as InboxRejectionCount[] | undefined) ?? [],
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.root.close();
  }
}

function purgedView(d: DeliveryRecord): PurgedDelivery {
  return { segment_id: d.segment_id, peer_id: d.peer_id, deadlettered_at: d.deadlettered_at, last_error: d.last_error };
}

export interface LedgerOptions {
  clock?: Clock;
  /** A monotonic clock in ms (default performance.now): retention's sanity bound against a wall clock that jumps. */
  monotonic?: () => number;
}

export function openRelayLedger(path: string, opts: LedgerOptions = {}): Promise<RelayLedger> {
  return RelayLedger.open(path, opts);
}
