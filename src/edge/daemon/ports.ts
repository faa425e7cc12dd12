import type { Clock } from "../../lib/index.js";
import type { Logger } from "../../observability/index.js";
import type { EdgeConfig } from "../config/schema.js";
import type { BandwidthLimiter, RefusedPeer, SegmentInfo, SegmentKind, SegmentStore } from "../types.js";
import type { SettleLogEntry } from "../relay/ledger.js";
import type { RelayInbox } from "./relay-inbox.js";
import type { DeadLetterDetail, DeadLetterEntry, DeadLetterRetried, PurgeRequest, DeadLetterPurgeResult, QueueCounts, RelayErrorView } from "./control-types.js";

/**
 * What the daemon needs from the relay (the ledger and executor of
 * src/edge/relay): the composition root adapts the executor to this port, so
 * the control socket, status, metrics and shutdown are written once against it.
 */
export interface RelayEngine {
  /**
   * Starts scheduling deliveries (pending ones from the ledger first); resolves once the start-up
   * bookkeeping (exhausted attempts, deliveries to removed peers) is done and scheduling runs.
   */
  start(): Promise<void> | void;
  /**
   * Stops scheduling; in-flight pushes finish, or are aborted after
   * `graceMs` and go back to `scheduled` in the ledger (nothing is lost).
   */
  stop(graceMs: number): Promise<void>;
  enqueue(bytes: Uint8Array, kind: SegmentKind): Promise<SegmentInfo & { created: boolean }>;
  /** Deliveries per ledger state, overall and per peer, with the latest errors (read from the ledger). */
  queue(): EngineQueue;
  /** Monotonic counts since start (Prometheus counters). */
  stats(): EngineStats;
  deadletterList(limit: number): Promise<DeadLetterEntry[]>;
  deadletterInspect(segmentId: string, peerId: string): Promise<DeadLetterDetail>;
  deadletterRetry(segmentId: string, peerId: string): Promise<DeadLetterRetried>;
  deadletterPurge(req: PurgeRequest): Promise<DeadLetterPurgeResult>;
  /**
   * The bandwidth settings changed (reload or `edgectl relay config
   * set-bandwidth`): deliveries held for the daily quota's reset are due again
   * now, so a raised or lifted quota releases them at once, not at the reset.
   */
  bandwidthChanged(): Promise<void>;
}

export interface EngineQueue {
  overall: QueueCounts;
  peers: Record<string, { queue: QueueCounts; last_error: RelayErrorView | null }>;
  last_error: RelayErrorView | null;
  /** Deliveries settled because their peer left edge.toml (outcome `peer_removed`), oldest first. */
  peer_settlements?: SettleLogEntry[];
}

export interface EngineStats {
  /** Segments whose success condition was met (the ledger's durable count). */
  delivered_total: number;
  /** Pushes a peer acknowledged, since edged started. */
  pushes_acked_total: number;
  /** Pushes that failed (retried with backoff or dead-lettered), since edged started. */
  failed_attempts_total: number;
  /** Segment bytes peers acknowledged, since edged started. */
  bytes_sent_total: number;
}

/** The relay's parts, opened for one daemon run (the store, the uplink, the engine, the receiver). */
export interface RelayParts {
  store: SegmentStore;
  bandwidth: BandwidthLimiter;
  engine: RelayEngine;
  /** TLS refusals in both directions (the receiver's and the transport's). */
  refused(): RefusedPeer[];
  /** The receiver's inbox and application cursor (relayed releases are applied from it). */
  inbox?: RelayInbox;
  /** Where the receiver listens (host:port), when this node receives. */
  receiverAddress?: string;
  /** Closes the receiver, the transport and the ledger; called after `engine.stop`. */
  close(): Promise<void>;
}

export interface PartsContext {
  clock: Clock;
  log: Logger;
}

/** Opens the relay's parts for a configuration (the real wiring, or a test's). */
export type RelayPartsFactory = (config: EdgeConfig, ctx: PartsContext) => Promise<RelayParts>;

/** Reads and validates edge.toml (src/edge/config/load.ts `loadEdgeConfig`). */
export type EdgeConfigLoader = (path: string) => Promise<EdgeConfig>;
