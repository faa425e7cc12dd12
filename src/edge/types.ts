/**
 * The contracts between the edge daemon's parts (segment store, relay ledger
 * and executor, transport, bandwidth, release relay, daemon). Each part
 * implements or consumes these shapes; none reaches into another's files.
 * Glossary (seed 004): a *segment* is the atomic unit of relayed content,
 * named by its content address; the *success condition* decides when a
 * segment counts as delivered.
 */

/** 64 lowercase hex characters: the SHA-256 of the segment's bytes (the same digest OCI uses for blobs). */
export type SegmentId = string;

/** What a segment carries: opaque application data, or a whole verified release (src/edge/release-relay). */
export type SegmentKind = "data" | "release";

export interface SegmentInfo {
  id: SegmentId;
  size: number;
  kind: SegmentKind;
}

export const SEGMENT_ID_RE = /^[0-9a-f]{64}$/;

// ---------------------------------------------------------------- storage

/**
 * Why a segment left the store; every eviction is recorded with its reason (exact accounting).
 * `lru_ceiling`: a delivered segment this node relayed, evicted least-recently-used to make room.
 * `lru_consumed`: an arrival the application already consumed (inbox seq at or below the cursor), evicted the same way.
 * `corrupt`: the store itself removed a segment whose bytes no longer hashed to its id (found by `get` or `verify`).
 * `orphan`: bytes no ledger record references (a crash between the store's put and the ledger's record), removed at start.
 */
export type EvictionReason = "lru_ceiling" | "lru_consumed" | "delivered_evict_on_relay" | "purged" | "deadletter_retention" | "corrupt" | "orphan";

export interface EvictionRecord {
  id: SegmentId;
  bytes: number;
  reason: EvictionReason;
  /** RFC 3339 UTC. */
  at: string;
}

export interface StoreUsage {
  /** The segments' byte lengths, summed. */
  used_bytes: number;
  /** What the ceiling counts: each segment's disk cost, its size rounded up to whole 4 KiB blocks, at least one block. */
  disk_bytes: number;
  ceiling_bytes: number;
  segments: number;
}

/** What a full scrub (`SegmentStore.verify`) found. */
export interface StoreVerifyReport {
  /** Segments read and re-hashed. */
  checked: number;
  /** Their bytes. */
  bytes: number;
  /** Segments that no longer matched their id (or whose file had vanished), removed with a `corrupt` record. */
  removed: EvictionRecord[];
}

/**
 * Content-addressed segments under `{state_root}/edge/segments/`, each written
 * temp → fsync → rename → fsync(dir). `put` checks the disk ceiling BEFORE it
 * writes: when the new bytes do not fit, it first evicts least-recently-used
 * segments that `evictable` allows (delivered ones, consumed arrivals), and fails with
 * STORAGE_CEILING_EXCEEDED when that is not enough — it never evicts a segment
 * the caller did not allow. `evictable` answers false (keep), true (evict as
 * `lru_ceiling`) or the reason to record. Open reads names and sizes only;
 * contents are checked by every `get` and by `verify`.
 */
export interface SegmentStore {
  put(bytes: Uint8Array, kind: SegmentKind, evictable?: (id: SegmentId) => boolean | EvictionReason): Promise<{ info: SegmentInfo; created: boolean; evicted: EvictionRecord[] }>;
  /** The bytes, re-hashed on read: SEGMENT_MISSING when absent, SEGMENT_CORRUPT when they no longer match the id. */
  get(id: SegmentId): Promise<Uint8Array>;
  has(id: SegmentId): boolean;
  info(id: SegmentId): SegmentInfo | undefined;
  /** Removes one segment for `reason`; undefined when it was not there. */
  remove(id: SegmentId, reason: EvictionReason): Promise<EvictionRecord | undefined>;
  usage(): StoreUsage;
  /** Every eviction since the store was created (persisted), newest last. */
  evictions(): readonly EvictionRecord[];
  list(): SegmentInfo[];
  /** Scrub: re-hashes every segment; one that no longer matches is removed with a `corrupt` record. */
  verify(): Promise<StoreVerifyReport>;
}

// ---------------------------------------------------------------- bandwidth

export interface BandwidthConfig {
  /** Token-bucket rate for outbound relay bytes; 0 = unlimited. */
  bytes_per_second: number;
  /** Bytes per day; 0 = unlimited. */
  daily_quota_bytes: number;
  /** When the daily quota resets, "HH:MM" in UTC. */
  quota_reset_utc: string;
}

export interface BandwidthSnapshot extends BandwidthConfig {
  unlimited: boolean;
  available_tokens: number;
  daily_used_bytes: number;
  /** RFC 3339 UTC of the next quota reset. */
  quota_resets_at: string;
  /** Sends that had to wait for tokens. */
  throttle_count: number;
  /** Sends refused because the daily quota would be exceeded (the delivery waits for the reset; nothing is lost). */
  quota_drop_count: number;
}

/** One node's uplink: shared by all peers, changed at run time without restart. */
export interface BandwidthLimiter {
  /** Reserves `bytes` of today's quota; false (and counts a quota drop) when it would exceed the quota. */
  reserveQuota(bytes: number): boolean;
  /**
   * Gives back `bytes` of a reservation that were never sent (a failed push). `dayEndsAt` is the
   * `quota_resets_at` the reservation was made under: a refund for a day already over is ignored.
   */
  refundQuota(bytes: number, dayEndsAt: string): void;
  /** Resolves once today's use, as of this call, is durable (at once when nothing persists it). */
  flushQuota(): Promise<void>;
  /** Waits until `bytes` may be sent at the configured rate (counts a throttle when it had to wait). Rejects when `signal` aborts. */
  acquire(bytes: number, signal?: AbortSignal): Promise<void>;
  update(cfg: BandwidthConfig): void;
  snapshot(): BandwidthSnapshot;
}

// ---------------------------------------------------------------- transport

export interface PeerConfig {
  /** The peer's node id; its certificate's subject CN (and a DNS SAN) must be exactly this. */
  id: string;
  /** host:port of the peer's relay receiver. */
  address: string;
}

/** Who sent a segment, as its verified client certificate says. */
export interface PeerIdentity {
  id: string;
  /** SHA-256 fingerprint of the client certificate, `sha256:<hex>`. */
  cert_fingerprint: string;
}

export interface PushResult {
  /** The receiver already held this segment from this sender (a retried push after a lost ack). */
  duplicate: boolean;
}

/**
 * Outbound half of the relay: pushes one segment to one peer over HTTP/2 with
 * mutual TLS, resolving only after the peer stored it durably and acknowledged.
 * Fails with a RelayError whose `code` is one of RELAY_FAILURE_CODES and whose
 * `details.retryable` says whether another attempt can help.
 */
export interface PeerTransport {
  push(peer: PeerConfig, segment: SegmentInfo, bytes: Uint8Array, signal?: AbortSignal): Promise<PushResult>;
  close(): Promise<void>;
}

/** A TLS refusal (either direction), kept for `edgectl relay status`. */
export interface RefusedPeer {
  direction: "inbound" | "outbound";
  /** Remote address (inbound) or the configured peer id (outbound). */
  peer: string;
  reason: "NO_CERTIFICATE" | "UNKNOWN_CA" | "CERT_EXPIRED" | "CERT_NOT_YET_VALID" | "NAME_MISMATCH" | "UNKNOWN_PEER" | "TLS_ERROR";
  detail: string;
  at: string;
  count: number;
}

/**
 * Inbound half: the receiver verified the sender's certificate and the bytes'
 * digest; the sink stores them durably and records the arrival (exactly once
 * per segment in the application inbox) BEFORE the receiver acknowledges.
 */
export interface SegmentSink {
  accept(segment: SegmentInfo, bytes: Uint8Array, from: PeerIdentity): Promise<{ duplicate: boolean; inbox_seq: number }>;
}

// ---------------------------------------------------------------- ledger states

/** Delivery state per (segment, peer); `acked` and `deadletter` are terminal until an operator retries. */
export type DeliveryState = "scheduled" | "inflight" | "acked" | "failed" | "deadletter";
export const DELIVERY_STATES: readonly DeliveryState[] = ["scheduled", "inflight", "acked", "failed", "deadletter"];

export type SuccessCondition = "one_peer" | "all_peers";
