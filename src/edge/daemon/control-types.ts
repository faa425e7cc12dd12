import type { InboxRejection, InboxRejectionCount, SettleLogEntry } from "../relay/ledger.js";
import type { BootStatusView } from "./boot-status.js";
import type { BandwidthConfig, BandwidthSnapshot, DeliveryState, EvictionReason, RefusedPeer, SegmentInfo, SegmentKind, StoreUsage, StoreVerifyReport, SuccessCondition } from "../types.js";

/**
 * The control socket's documents (snake_case, as they travel) and the
 * {@link RelayControl} interface the server calls. The daemon implements it
 * over the executor, the ledger, the store, the bandwidth limiter and the
 * receiver; tests implement it with a double. Field names follow the
 * original's `relay status` (queue{scheduled,inflight,acked,failed,deadletter,total},
 * throttle and quota-drop counts, queried_at).
 */

/** Deliveries per ledger state, plus their total. */
export type QueueCounts = Record<DeliveryState, number> & { total: number };

export interface PeerStatusView {
  peer_id: string;
  address: string;
  queue: QueueCounts;
  /** The last failed attempt to this peer, if its latest attempt failed. */
  last_error: RelayErrorView | null;
}

export interface RelayErrorView {
  code: string;
  message: string;
  peer_id?: string;
  segment_id?: string;
  /** RFC 3339 UTC. */
  at: string;
}

export interface StoreStatus extends StoreUsage {
  /** Evictions since the store was created, by reason (exact accounting). */
  evictions: { count: number; bytes: number; by_reason: Record<EvictionReason, number> };
}

/** The receiver's inbox as the application left it. */
export interface InboxStatus {
  /** The newest entries passed without being applied, oldest first (bounded). */
  rejected: InboxRejection[];
  /** All passed entries by kind, outcome (`refused` | `abandoned`) and code (durable, monotonic). */
  rejected_counts: InboxRejectionCount[];
}

/** Where the running configuration came from and whether the last reload worked. */
export interface ConfigState {
  source: string;
  /** RFC 3339 UTC of the last successful (re)load. */
  loaded_at: string;
  /** The last reload's failure (the running config was kept), or null. */
  config_reload_error: string | null;
  /** Keys changed in the file that only take effect after a restart of edged. */
  restart_required: string[];
}

/** `GET /v1/relay/status`: everything `edgectl relay status` shows. */
export interface RelayStatusView {
  enabled: boolean;
  node_id: string;
  success_condition: SuccessCondition;
  workers: number;
  queue: QueueCounts;
  peers: PeerStatusView[];
  bandwidth: BandwidthSnapshot;
  last_error: RelayErrorView | null;
  refused_peers: RefusedPeer[];
  /** Received segments the application did not apply (a relayed release refused by this node's rules, a poison entry passed). */
  inbox: InboxStatus;
  /** Deliveries settled because their peer left edge.toml (outcome `peer_removed`; never counted as acked), oldest first. */
  peer_settlements: SettleLogEntry[];
  store: StoreStatus;
  config: ConfigState;
  /** The node's boot epoch and last OS reconstruction (read from the state root at each query). */
  boot: BootStatusView;
  /** RFC 3339 UTC. */
  queried_at: string;
}

/** `GET /v1/relay/config`: the running relay configuration (no key material, only file paths). */
export interface RelayConfigView {
  source: string;
  node_id: string;
  state_root: string;
  listen: string | null;
  enabled: boolean;
  success_condition: SuccessCondition;
  worker_count: number;
  dial_timeout_ms: number;
  ack_timeout_ms: number;
  max_segment_bytes: number;
  evict_on_relay: boolean;
  relay_activated_release: boolean;
  activate_relayed_releases: boolean;
  retry: { max_retry: number; backoff_initial_ms: number; backoff_max_ms: number; jitter: number };
  storage: { ceiling_bytes: number; deadletter_retention_ms: number };
  bandwidth: BandwidthConfig;
  peers: { id: string; address: string }[];
  config_reload_error: string | null;
  restart_required: string[];
}

/** `POST /v1/relay/config/bandwidth` body: the fields to change; the others keep their running value. */
export type BandwidthChange = Partial<BandwidthConfig>;

export interface BandwidthApplied {
  applied: true;
  bandwidth: BandwidthConfig;
  /** Set through the control socket only: edge.toml is not rewritten, a restart goes back to the file's values. */
  persisted: false;
}

export interface DeadLetterEntry {
  segment_id: string;
  peer_id: string;
  kind: SegmentKind;
  size: number;
  attempts: number;
  first_queued_at: string;
  last_updated_at: string;
  last_error: { code: string; message: string } | null;
}

export interface DeliveryAttempt {
  started: string;
  completed: string | null;
  outcome: string;
  error: { code: string; message: string } | null;
}

export interface DeadLetterDetail extends DeadLetterEntry {
  state: DeliveryState;
  history: DeliveryAttempt[];
  /** Whether the segment's bytes are still in the store (a retry needs them). */
  segment_present: boolean;
}

export interface DeadLetterRetried {
  segment_id: string;
  peer_id: string;
  state: DeliveryState;
}

export interface PurgeRequest {
  segment_id?: string;
  peer_id?: string;
  force: boolean;
}

export interface DeadLetterPurgeResult {
  /** True when nothing was removed (no --force): `matched` is what a forced purge would remove. */
  dry_run: boolean;
  matched: { segment_id: string; peer_id: string }[];
  purged: number;
}

/**
 * What the control socket drives. Every method may throw an EdgeError
 * (DEADLETTER_NOT_FOUND, UNKNOWN_PEER, SEGMENT_TOO_LARGE, …); the server turns
 * it into problem details with the same code.
 */
export interface RelayControl {
  status(): Promise<RelayStatusView>;
  config(): Promise<RelayConfigView>;
  setBandwidth(change: BandwidthChange): Promise<BandwidthApplied>;
  deadletterList(limit: number): Promise<DeadLetterEntry[]>;
  deadletterInspect(segmentId: string, peerId: string): Promise<DeadLetterDetail>;
  deadletterRetry(segmentId: string, peerId: string): Promise<DeadLetterRetried>;
  deadletterPurge(req: PurgeRequest): Promise<DeadLetterPurgeResult>;
  /** Stores the bytes as a segment and schedules it for every peer. */
  enqueue(bytes: Uint8Array, kind: SegmentKind): Promise<SegmentInfo & { created: boolean }>;
  /** Scrub: re-hashes every stored segment, removing (with a `corrupt` record) any that no longer matches. */
  storageVerify(): Promise<StoreVerifyReport>;
}

/** A zero count per eviction reason (a `satisfies` check: a new reason fails to compile until it is listed here). */
export function zeroEvictionCounts(): Record<EvictionReason, number> {
  return { lru_ceiling: 0, lru_consumed: 0, delivered_evict_on_relay: 0, purged: 0, deadletter_retention: 0, corrupt: 0, orphan: 0 } satisfies Record<EvictionReason, number>;
}
