import { isoTime, seededRng, systemClock, type Clock, type Rng } from "../../lib/index.js";
import type { EdgeConfig } from "../config/schema.js";
import { RELAY_FAILURE_CODES } from "../errors.js";
import type { BandwidthLimiter, BandwidthSnapshot, DeliveryState, PeerConfig, PeerTransport, SegmentId, SegmentInfo, SegmentKind, SegmentStore, StoreUsage } from "../types.js";
import { backoffDelay } from "./backoff.js";
import type { DeliveryRecord, RelayErrorInfo, ReofferReason } from "./ledger-records.js";
import type { LedgerSummary, PurgeFilter, PurgeLogEntry, PurgeResult, RelayLedger, SettleLogEntry } from "./ledger.js";

/** The part of pino the executor uses (structural, so tests can pass a recorder). */
export interface RelayLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export type RelayExecutorConfig = EdgeConfig["relay"] & {
  scheduler: EdgeConfig["scheduler"];
  /** [storage] deadletter_retention_hours in ms; absent = dead letters are kept until purged. */
  deadletterRetentionMs?: number;
};

export interface RelayExecutorOptions {
  ledger: RelayLedger;
  store: SegmentStore;
  transport: PeerTransport;
  bandwidth: BandwidthLimiter;
  peers: readonly PeerConfig[];
  config: RelayExecutorConfig;
  clock?: Clock;
  rng?: Rng;
  log?: RelayLog;
}

export interface PeerStatus {
  id: string;
  address: string;
  queue: Record<DeliveryState, number>;
  /** Pushes to this peer running now (at most `slots`). */
  active: number;
  slots: number;
  last_error: LedgerSummary["peers"][string]["last_error"];
}

export interface RelayStatus {
  enabled: boolean;
  running: boolean;
  /** [relay] worker_count, as configured (shown as the original's `workers`). */
  workers: number;
  /** The concurrency actually enforced: shared out per peer (`slots` in each peer's entry). */
  max_concurrent_relays: number;
  success: EdgeConfig["relay"]["successCondition"];
  queue: LedgerSummary["queue"];
  peers: PeerStatus[];
  segments: number;
  delivered_segments: number;
  /** Pushes held back because the daily quota was used up (not attempts; they wait for the reset). */
  quota_deferrals: number;
  bandwidth: BandwidthSnapshot;
  storage: StoreUsage & { evictions: number };
  deadletter_purges: PurgeLogEntry[];
  /** Deliveries settled because their peer left edge.toml (outcome `peer_removed`), oldest first. */
  peer_settlements: SettleLogEntry[];
  queried_at: string;
}

export interface RelayStats {
  delivered_total: number;
  pushes_acked_total: number;
  failed_attempts_total: number;
  /** Segment bytes peers acknowledged. */
  bytes_sent_total: number;
  quota_deferrals_total: number;
}

/**
 * How often dead letters are checked against the retention: half the retention, between 1 s and 1 min, so a
 * dead letter outlives its retention by at most half of it (a fixed minute would keep a short retention's
 * dead letters for up to 60 s after a start that came just before they expired).
 */
function sweepEveryMs(retentionMs: number): number {
  return Math.min(60_000, Math.max(1_000, Math.floor(retentionMs / 2)));
}
const NOT_RETRYABLE: ReadonlySet<string> = new Set(["SEGMENT_MISSING", "RELAY_PEER_REJECTED"]);
/** A dead letter with one of these last errors failed because the peer was away, not because it refused the bytes: worth re-offering. */
const PEER_AWAY: ReadonlySet<string> = new Set(["RELAY_PEER_UNREACHABLE", "RELAY_TLS_REFUSED", "RELAY_ACK_TIMEOUT", "RELAY_PEER_ERROR", "RELAY_INTERRUPTED"]);

interface Running {
  controller: AbortController;
  done: Promise<void>;
}

/** How a push failure is recorded: its code (a RELAY_FAILURE_CODES member) and whether another attempt can help. */
export function classifyFailure(err: unknown): RelayErrorInfo & { retryable: boolean } {
  const e = err as { code?: unknown; message?: unknown; details?: { retryable?: unknown } } | null;
  const message = typeof e?.message === "string" ? e.message : String(err);
  const known = typeof e?.code === "string" && (RELAY_FAILURE_CODES as readonly string[]).includes(e.code);
  const code = known ? (e?.code as string) : "RELAY_PEER_ERROR";
  const flagged = e?.details?.retryable;
  const retryable = code === "SEGMENT_MISSING" ? false : typeof flagged === "boolean" ? flagged : !NOT_RETRYABLE.has(code);
  return { code, message, retryable };
}

/**
 * Pushes segments to peers as the ledger schedules them (docs/relay.md "Executor").
 *
 * Isolation: every peer has its own concurrency slots (max_concurrent_relays
 * shared out evenly, at least one each) and the scheduler skips a peer whose
 * slots are all busy, so a peer that hangs holds only its own slots while the
 * others keep being served. Each state change is a durable ledger transaction
 * made before the next step (begin before the push, ack or failure after it).
 */
export class RelayExecutor {
  private readonly o: RelayExecutorOptions;
  private readonly clock: Clock;
  private readonly rng: Rng;
  private readonly peersById: Map<string, PeerConfig>;
  private readonly running = new Map<string, Running>();
  private readonly activePerPeer = new Map<string, number>();
  private readonly quotaDeferred = new Set<string>();
  /** Peers whose last push failed: their next ack means they came back (and get their dead-lettered releases again). */
  private readonly peersAway = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  private stopping = false;
  private roundActive: Promise<void> | undefined;
  private roundAgain = false;
  private quotaDeferrals = 0;
  private readonly counters = { pushes_acked_total: 0, failed_attempts_total: 0, bytes_sent_total: 0 };
  private lastSweep = Number.NEGATIVE_INFINITY;

  constructor(opts: RelayExecutorOptions) {
    this.o = opts;
    this.clock = opts.clock ?? systemClock;
    this.rng = opts.rng ?? seededRng(Date.now());
    this.peersById = new Map(opts.peers.map((p) => [p.id, p]));
  }

  /** Per-peer concurrency: the global limit shared out so that all peers' slots together never exceed it (one each at least). */
  get slotsPerPeer(): number {
    return Math.max(1, Math.floor(this.o.config.scheduler.maxConcurrentRelays / Math.max(1, this.peersById.size)));
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.stopping = false;
    this.lastSweep = Number.NEGATIVE_INFINITY; // the first round of a start sweeps retention at once
    await this.deadletterExhausted();
    await this.settleRemovedPeers();
    await this.reoffer({}, "edged_start");
    this.timer = setInterval(() => this.kick(), this.o.config.scheduler.intervalMs);
    this.timer.unref();
    this.kick();
  }

  /**
   * Stops scheduling; pushes in flight may finish within `graceMs`, the rest
   * are aborted and go back to scheduled/failed in the ledger (nothing lost).
   */
  async stop(graceMs = 0): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.roundActive?.catch(() => undefined); // a round in progress starts no push once stopping is set
    if (graceMs > 0 && this.running.size > 0) {
      let t: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((res) => { t = setTimeout(res, graceMs); });
      await Promise.race([Promise.allSettled([...this.running.values()].map((r) => r.done)), grace]);
      clearTimeout(t);
    }
    for (const r of this.running.values()) r.controller.abort();
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
    this.started = false;
  }

  /**
   * Stores the segment (delivered segments no peer still waits for may be evicted to make room) and
   * schedules it to every configured peer; `created` is false when the relay
   * already knew this content (then only peers it was not scheduled to are added).
   */
  async enqueue(bytes: Uint8Array, kind: SegmentKind): Promise<SegmentInfo & { created: boolean }> {
    // What may go to make room: delivered segments no peer waits for, and arrivals the application consumed.
    const put = await this.o.store.put(bytes, kind, (id) => this.o.ledger.releasable(id));
    for (const ev of put.evicted) this.o.log?.info({ segment_id: ev.id, bytes: ev.bytes, reason: ev.reason }, "relay: segment evicted to make room");
    const { created } = await this.o.ledger.schedule(put.info, [...this.peersById.keys()], this.o.config.successCondition);
    if (!created && kind === "release") await this.reoffer({ segment_id: put.info.id }, "release_reenqueued");
    this.kick();
    return { ...put.info, created };
  }

  /** Monotonic counts since this executor was created (Prometheus counters); the delivered count is the ledger's durable one. */
  stats(): RelayStats {
    return { ...this.counters, delivered_total: this.o.ledger.summary().delivered_segments, quota_deferrals_total: this.quotaDeferrals };
  }

  /** Runs a scheduling round soon (coalesced: at most one runs, and one more is queued behind it). */
  kick(): void {
    if (!this.started || this.stopping) return;
    if (this.roundActive) {
      this.roundAgain = true;
      return;
    }
    this.roundActive = this.round().catch((err: unknown) => {
      this.o.log?.warn({ err }, "relay: scheduling round failed");
    }).finally(() => {
      this.roundActive = undefined;
      if (this.roundAgain) {
        this.roundAgain = false;
        this.kick();
      }
    });
  }

  /** Starts pushes for due deliveries on peers with a free slot; returns once they are started (not finished). */
  private async round(): Promise<void> {
    await this.sweepRetention();
    const now = this.clock.now();
    const busy = (d: { peer_id: string }): boolean => !this.peersById.has(d.peer_id) || (this.activePerPeer.get(d.peer_id) ?? 0) >= this.slotsPerPeer;
    const due = this.o.ledger.due(now, this.o.config.scheduler.maxSegmentsPerRound, (d) => busy(d) || this.running.has(key(d)));
    for (const d of due) {
      if (this.stopping) return;
      if (busy(d) || this.running.has(key(d))) continue;
      await this.dispatch(d);
    }
  }

  /** Pre-push checks (segment present, quota), then the push runs in the background holding one of the peer's slots. */
  private async dispatch(d: DeliveryRecord): Promise<void> {
    const info = this.o.store.info(d.segment_id);
    if (info === undefined) {
      await this.o.ledger.deadletter(d.segment_id, d.peer_id, { code: "SEGMENT_MISSING", message: `segment ${d.segment_id} is no longer in the store` });
      this.o.log?.warn({ segment_id: d.segment_id, peer_id: d.peer_id }, "relay: segment missing, dead-lettered");
      return;
    }
    if (!this.o.bandwidth.reserveQuota(info.size)) {
      await this.o.ledger.defer(d.segment_id, d.peer_id, Date.parse(this.o.bandwidth.snapshot().quota_resets_at));
      this.quotaDeferred.add(key(d));
      this.quotaDeferrals += 1;
      return;
    }
    // The reservation is durable before a byte is sent: a crash never hands out the day's quota again.
    await this.o.bandwidth.flushQuota();
    const quotaDay = this.o.bandwidth.snapshot().quota_resets_at;
    const controller = new AbortController();
    this.activePerPeer.set(d.peer_id, (this.activePerPeer.get(d.peer_id) ?? 0) + 1);
    const entry: Running = { controller, done: Promise.resolve() };
    this.running.set(key(d), entry);
    entry.done = this.attempt(d, info, controller.signal, quotaDay).catch((err: unknown) => {
      this.o.log?.warn({ err, segment_id: d.segment_id, peer_id: d.peer_id }, "relay: could not record a delivery attempt");
    }).finally(() => {
      this.running.delete(key(d));
      this.activePerPeer.set(d.peer_id, (this.activePerPeer.get(d.peer_id) ?? 1) - 1);
      this.kick();
    });
  }

  private async attempt(d: DeliveryRecord, info: SegmentInfo, signal: AbortSignal, quotaDay: string): Promise<void> {
    const peer = this.peersById.get(d.peer_id) as PeerConfig; // due() skipped unknown peers
    let began: DeliveryRecord;
    try {
      began = await this.o.ledger.begin(d.segment_id, d.peer_id);
    } catch (err) {
      this.o.bandwidth.refundQuota(info.size, quotaDay);
      throw err;
    }
    let bytes: Uint8Array;
    try {
      bytes = await this.o.store.get(d.segment_id);
    } catch (err) {
      this.o.bandwidth.refundQuota(info.size, quotaDay);
      // Gone or corrupt (the store drops a corrupt one): no attempt can help; recorded under the store's own code.
      const e = err as { code?: unknown; message?: unknown };
      const code = e.code === "SEGMENT_CORRUPT" ? "SEGMENT_CORRUPT" : "SEGMENT_MISSING";
      await this.failed(began, { code, message: typeof e.message === "string" ? e.message : String(err), retryable: false });
      return;
    }
    try {
      await this.o.bandwidth.acquire(info.size, signal);
      const result = await this.o.transport.push(peer, info, bytes, signal);
      this.counters.pushes_acked_total += 1;
      this.counters.bytes_sent_total += info.size;
      await this.acked(d.segment_id, d.peer_id, result.duplicate);
      if (this.peersAway.delete(d.peer_id)) await this.reoffer({ peer_id: d.peer_id }, "peer_back");
    } catch (err) {
      // Quota pays for the body bytes that left this node, not for an attempt (docs/relay.md "Executor").
      this.o.bandwidth.refundQuota(info.size - bodyBytesSent(err, info.size), quotaDay);
      if (signal.aborted) {
        await this.o.ledger.abort(d.segment_id, d.peer_id);
        return;
      }
      this.counters.failed_attempts_total += 1;
      this.peersAway.add(d.peer_id);
      await this.failed(began, classifyFailure(err));
    }
  }

  private async acked(segment: SegmentId, peer: string, duplicate: boolean): Promise<void> {
    const r = await this.o.ledger.ack(segment, peer, duplicate);
    if (r.newlyDelivered) this.o.log?.info({ segment_id: segment, peer_id: peer }, "relay: segment delivered (success condition met)");
    if (!this.o.config.evictOnRelay) return;
    if (this.evictable(segment) && this.o.store.has(segment)) await this.o.store.remove(segment, "delivered_evict_on_relay");
  }

  /**
   * A segment's bytes may go (evict_on_relay, or LRU at the ceiling) once it is
   * delivered AND no other peer still waits for them: a one_peer success leaves
   * the others their copy (a dead letter counts as waiting: it can be requeued).
   */
  private evictable(segment: SegmentId): boolean {
    // The ledger's rule (RelayLedger.releasable), which also keeps an arrival of the same bytes the application has not consumed yet.
    return this.o.ledger.releasable(segment) !== false;
  }

  private async failed(d: DeliveryRecord, f: RelayErrorInfo & { retryable: boolean }): Promise<void> {
    const attempts = d.attempts + 1;
    const exhausted = attempts >= this.o.config.retry.maxRetry;
    const retryAt = !f.retryable || exhausted ? null : this.clock.now() + backoffDelay(attempts, this.o.config.retry, this.rng);
    await this.o.ledger.fail(d.segment_id, d.peer_id, { code: f.code, message: f.message }, retryAt);
    if (retryAt === null) this.o.log?.warn({ segment_id: d.segment_id, peer_id: d.peer_id, code: f.code, attempts }, "relay: delivery dead-lettered");
  }

  /** After a crash, an interrupted attempt counted; a delivery that thereby used its last attempt goes to DEADLETTER. */
  private async deadletterExhausted(): Promise<void> {
    for (const d of this.o.ledger.deliveriesWhere((x) => x.state === "failed" && x.attempts >= this.o.config.retry.maxRetry)) {
      await this.o.ledger.deadletter(d.segment_id, d.peer_id, d.last_error ?? { code: "RELAY_INTERRUPTED", message: "attempts used up" });
    }
  }

  /**
   * Sends dead-lettered `release` deliveries back to `scheduled` (docs/relay.md "Re-offering a release"):
   * a node that is often offline must still get the release once it is back, without an operator. Only
   * dead letters of a peer that was away (PEER_AWAY) whose bytes are still here; a peer that refused
   * the release keeps its dead letter.
   */
  private async reoffer(filter: { peer_id?: string; segment_id?: SegmentId }, reason: ReofferReason): Promise<void> {
    const when = (d: DeliveryRecord): boolean => this.peersById.has(d.peer_id) && PEER_AWAY.has(d.last_error?.code ?? "") && this.o.store.has(d.segment_id);
    const back = await this.o.ledger.reofferReleases({ ...filter, when }, reason);
    for (const d of back) this.o.log?.info({ segment_id: d.segment_id, peer_id: d.peer_id, reason }, "relay: dead-lettered release re-offered");
    if (back.length > 0) this.kick();
  }

  /**
   * Deliveries to a peer no longer in edge.toml can never be made: they are
   * settled (outcome `peer_removed`, logged and shown in status), so the
   * success condition is judged over the current peers and the queue adds up.
   * [[peers]] changes need a restart, so this runs on start only.
   */
  private async settleRemovedPeers(): Promise<void> {
    const r = await this.o.ledger.settleRemovedPeers([...this.peersById.keys()]);
    for (const s of r.settled) {
      this.o.log?.warn({ event: "relay_peer_removed_settled", peer_id: s.peer_id, deliveries: s.count, unacked: s.unacked }, "relay: deliveries to a peer no longer in edge.toml settled (peer_removed)");
    }
    for (const id of r.newly_delivered) {
      this.o.log?.info({ segment_id: id }, "relay: segment delivered (success condition met by the remaining peers)");
      if (this.o.config.evictOnRelay && this.evictable(id) && this.o.store.has(id)) await this.o.store.remove(id, "delivered_evict_on_relay");
    }
    // Bytes no current peer needs: accounted as `purged` (the settlement log names the peer).
    for (const s of r.released_segments) if (this.o.store.has(s.segment_id)) await this.o.store.remove(s.segment_id, "purged");
  }

  /** The quota was raised or reset early (edgectl set-bandwidth): deliveries held for the reset are due again now. */
  async resumeQuotaDeferred(): Promise<void> {
    const now = this.clock.now();
    for (const k of [...this.quotaDeferred]) {
      this.quotaDeferred.delete(k);
      const [segment = "", peer = ""] = k.split("/");
      const d = this.o.ledger.delivery(segment, peer);
      if (d && (d.state === "scheduled" || d.state === "failed")) await this.o.ledger.defer(segment, peer, now);
    }
    this.kick();
  }

  private async sweepRetention(): Promise<void> {
    const retention = this.o.config.deadletterRetentionMs;
    // A clock set back (after a forward step) must not stop sweeps until it passes the step again.
    if (this.clock.now() < this.lastSweep) this.lastSweep = this.clock.now();
    if (retention === undefined || this.clock.now() - this.lastSweep < sweepEveryMs(retention)) return;
    this.lastSweep = this.clock.now();
    const r = await this.o.ledger.purgeExpired(retention);
    if (r.skipped) this.o.log?.warn({ clock_jump_ms: r.skipped.clock_jump_ms }, "relay: dead-letter retention sweep skipped: the wall clock jumped ahead of the monotonic clock");
    if (r.purged.length > 0) this.o.log?.info({ purged: r.purged.length }, "relay: dead letters past retention purged");
    await this.dropReleased(r, "deadletter_retention");
  }

  /** Segments no delivery needs any more lose their bytes, unless delivered (LRU keeps those until space is needed). */
  private async dropReleased(r: PurgeResult, reason: "purged" | "deadletter_retention"): Promise<void> {
    for (const s of r.released_segments) {
      if ((!s.delivered || this.o.config.evictOnRelay) && this.o.store.has(s.segment_id)) await this.o.store.remove(s.segment_id, reason);
    }
  }

  // ------------------------------------------------------------ dead letters

  deadletters(limit = 50): DeliveryRecord[] {
    return this.o.ledger.deadletters(limit);
  }

  inspect(segment: SegmentId, peer: string): DeliveryRecord {
    return this.o.ledger.inspect(segment, peer);
  }

  async retry(segment: SegmentId, peer: string): Promise<DeliveryRecord> {
    const d = await this.o.ledger.retry(segment, peer);
    this.kick();
    return d;
  }

  /** Dry run unless `force`; with force, segments left without any use lose their bytes (reason `purged`). */
  async purge(f: PurgeFilter): Promise<PurgeResult> {
    const r = await this.o.ledger.purge(f);
    if (!r.dry_run) await this.dropReleased(r, "purged");
    return r;
  }

  /** Everything `edgectl relay status` shows about the relay (the daemon adds refused peers from the transport). */
  status(): RelayStatus {
    const s = this.o.ledger.summary();
    const empty = { scheduled: 0, inflight: 0, acked: 0, failed: 0, deadletter: 0 };
    return {
      enabled: this.o.config.enabled,
      running: this.started && !this.stopping,
      workers: this.o.config.workerCount,
      max_concurrent_relays: this.o.config.scheduler.maxConcurrentRelays,
      success: this.o.config.successCondition,
      queue: s.queue,
      peers: [...this.peersById.values()].map((p) => ({
        id: p.id, address: p.address, queue: s.peers[p.id]?.queue ?? { ...empty },
        active: this.activePerPeer.get(p.id) ?? 0, slots: this.slotsPerPeer, last_error: s.peers[p.id]?.last_error ?? null,
      })),
      segments: s.segments,
      delivered_segments: s.delivered_segments,
      quota_deferrals: this.quotaDeferrals,
      bandwidth: this.o.bandwidth.snapshot(),
      storage: { ...this.o.store.usage(), evictions: this.o.store.evictions().length },
      deadletter_purges: this.o.ledger.purgeLog(),
      peer_settlements: this.o.ledger.settleLog(),
      queried_at: isoTime(this.clock),
    };
  }
}

/** Body bytes a failed push put on the wire, as the transport reports it (`body_bytes_sent`); unknown = all of them. */
export function bodyBytesSent(err: unknown, size: number): number {
  const e = err as { details?: { body_bytes_sent?: unknown }; body_bytes_sent?: unknown } | null;
  const sent = e?.details?.body_bytes_sent ?? e?.body_bytes_sent;
  return typeof sent === "number" && Number.isSafeInteger(sent) && sent >= 0 ? Math.min(sent, size) : size;
}

function key(d: { segment_id: SegmentId; peer_id: string }): string {
  return `${d.segment_id}/${d.peer_id}`;
}
