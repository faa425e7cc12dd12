import type { Clock } from "../../lib/index.js";
import { isoTime } from "../../lib/index.js";
import type { SegmentKind, StoreVerifyReport } from "../types.js";
import { EdgeError } from "../errors.js";
import type {
  BandwidthApplied, BandwidthChange, DeadLetterDetail, DeadLetterEntry, DeadLetterRetried, InboxStatus, PurgeRequest, DeadLetterPurgeResult, RelayConfigView, RelayControl, RelayStatusView, StoreStatus,
} from "./control-types.js";
import { zeroEvictionCounts } from "./control-types.js";
import { readBootStatus } from "./boot-status.js";
import type { RelayParts } from "./ports.js";
import type { RunningConfig } from "./running-config.js";

/** The daemon's {@link RelayControl}: the control socket's view of the running relay. */
export class DaemonRelayControl implements RelayControl {
  readonly #parts: RelayParts;
  readonly #config: RunningConfig;
  readonly #clock: Clock;
  readonly #inbox: () => InboxStatus;

  /** `inbox`: what the inbox consumer passed without applying (the daemon's {@link inboxStatusOf}). */
  constructor(parts: RelayParts, config: RunningConfig, clock: Clock, inbox: () => InboxStatus = () => inboxStatusOf(parts)) {
    this.#parts = parts;
    this.#config = config;
    this.#clock = clock;
    this.#inbox = inbox;
  }

  async status(): Promise<RelayStatusView> {
    const c = this.#config.current;
    const q = this.#parts.engine.queue();
    const boot = await readBootStatus(c.node.stateRoot);
    return {
      enabled: c.relay.enabled,
      node_id: c.node.id,
      success_condition: c.relay.successCondition,
      workers: c.relay.workerCount,
      queue: q.overall,
      // Every configured peer is listed, also one that has no delivery yet.
      peers: c.peers.map((p) => ({ peer_id: p.id, address: p.address, queue: q.peers[p.id]?.queue ?? { scheduled: 0, inflight: 0, acked: 0, failed: 0, deadletter: 0, total: 0 }, last_error: q.peers[p.id]?.last_error ?? null })),
      bandwidth: this.#parts.bandwidth.snapshot(),
      last_error: q.last_error,
      refused_peers: this.#parts.refused(),
      inbox: this.#inbox(),
      peer_settlements: q.peer_settlements ?? [],
      store: this.#store(),
      config: this.#config.state(),
      boot,
      queried_at: isoTime(this.#clock),
    };
  }

  #store(): StoreStatus {
    const by_reason = zeroEvictionCounts();
    let bytes = 0;
    const ev = this.#parts.store.evictions();
    for (const e of ev) {
      by_reason[e.reason] += 1;
      bytes += e.bytes;
    }
    return { ...this.#parts.store.usage(), evictions: { count: ev.length, bytes, by_reason } };
  }

  config(): Promise<RelayConfigView> {
    const c = this.#config.current;
    const s = this.#config.state();
    return Promise.resolve({
      source: c.source, node_id: c.node.id, state_root: c.node.stateRoot, listen: c.transport.listen ?? null,
      enabled: c.relay.enabled, success_condition: c.relay.successCondition, worker_count: c.relay.workerCount,
      dial_timeout_ms: c.relay.dialTimeoutMs, ack_timeout_ms: c.relay.ackTimeoutMs, max_segment_bytes: c.relay.maxSegmentBytes,
      evict_on_relay: c.relay.evictOnRelay, relay_activated_release: c.relay.relayActivatedRelease, activate_relayed_releases: c.relay.activateRelayedReleases,
      retry: { max_retry: c.relay.retry.maxRetry, backoff_initial_ms: c.relay.retry.backoffInitialMs, backoff_max_ms: c.relay.retry.backoffMaxMs, jitter: c.relay.retry.jitter },
      storage: { ceiling_bytes: c.storage.ceilingBytes, deadletter_retention_ms: c.storage.deadletterRetentionMs },
      bandwidth: { ...c.bandwidth }, peers: c.peers.map((p) => ({ ...p })),
      config_reload_error: s.config_reload_error, restart_required: s.restart_required,
    });
  }

  setBandwidth(change: BandwidthChange): Promise<BandwidthApplied> {
    return Promise.resolve(this.#config.setBandwidth(change));
  }

  deadletterList(limit: number): Promise<DeadLetterEntry[]> {
    return this.#parts.engine.deadletterList(limit);
  }

  deadletterInspect(segmentId: string, peerId: string): Promise<DeadLetterDetail> {
    return this.#parts.engine.deadletterInspect(segmentId, peerId);
  }

  deadletterRetry(segmentId: string, peerId: string): Promise<DeadLetterRetried> {
    this.#knownPeer(peerId);
    return this.#parts.engine.deadletterRetry(segmentId, peerId);
  }

  deadletterPurge(req: PurgeRequest): Promise<DeadLetterPurgeResult> {
    return this.#parts.engine.deadletterPurge(req);
  }

  enqueue(bytes: Uint8Array, kind: SegmentKind): Promise<{ id: string; size: number; kind: SegmentKind; created: boolean }> {
    if (!this.#config.current.relay.enabled) throw new EdgeError("RELAY_DISABLED", "the relay is disabled on this node ([relay] enabled = false); nothing can be sent");
    return this.#parts.engine.enqueue(bytes, kind);
  }

  /** Scrub: reads and re-hashes every segment (the start of edged reads names and sizes only). Works with the relay disabled too. */
  storageVerify(): Promise<StoreVerifyReport> {
    return this.#parts.store.verify();
  }

  /** A retry to a peer no longer in edge.toml could never be delivered. */
  #knownPeer(peerId: string): void {
    if (!this.#config.current.peers.some((p) => p.id === peerId)) throw new EdgeError("UNKNOWN_PEER", `peer ${peerId} is not configured in ${this.#config.current.source}`);
  }
}

/** The inbox's durable record of entries passed without being applied (empty when the parts keep none). */
export function inboxStatusOf(parts: Pick<RelayParts, "inbox">): InboxStatus {
  const r = parts.inbox?.rejections?.();
  return { rejected: r?.entries ?? [], rejected_counts: r?.counts ?? [] };
}
