import { messageOf } from "../../lib/index.js";
import type { Logger } from "../../observability/index.js";
import type { EdgeConfig } from "../config/schema.js";
import type { SegmentStore } from "../types.js";
import { describeRelayedRelease } from "../release-relay-unpack.js";
import type { RelayEngine } from "./ports.js";
import { MAX_APPLY_ATTEMPTS, startInboxConsumer } from "./relay-inbox.js";
import type { InboxApplier, InboxConsumer, InboxRejectionLog, RelayInbox } from "./relay-inbox.js";

export type { InboxArrival, RelayInbox } from "./relay-inbox.js";

/** The release relay (src/edge/release-relay.ts): watch this node's activation; activate a relayed release. */
export interface ReleaseRelay {
  watchActiveRelease(opts: { stateRoot: string; onRelease: (packed: { bytes: Uint8Array; statementDigest: string; sequence: number }) => Promise<void>; intervalMs?: number; maxBytes?: number; onError?: (e: unknown, message: string) => void }): { stop(): Promise<void> };
  activateRelayedRelease(opts: { stateRoot: string; bytes: Uint8Array; maxBytes?: number }): Promise<unknown>;
  /** What a relayed release claims to carry, read from its bytes WITHOUT verifying them (for the record of a refusal). */
  describeRelayedRelease?(bytes: Uint8Array, maxBytes: number): Promise<{ statementDigest: string | null; sequence: number | null }>;
}

export interface ReleaseHooksOptions {
  config: EdgeConfig;
  engine: Pick<RelayEngine, "enqueue">;
  inbox: RelayInbox;
  store: Pick<SegmentStore, "get">;
  release: ReleaseRelay;
  log: Logger;
  /** How often the inbox is read. Default the scheduler interval. */
  intervalMs?: number;
}

/** Drains a relayed release that keeps failing (not exit 4) is tried in before it is passed (the inbox's general rule). */
export const MAX_RELEASE_ATTEMPTS = MAX_APPLY_ATTEMPTS;

/**
 * "Seed once, update everywhere" inside edged: when the node's activation
 * changes and `[relay] relay_activated_release` is on, the active release is
 * enqueued as a `release` segment for every peer; when the inbox receives a
 * `release` segment and `activate_relayed_releases` is on, it is activated
 * (verified under this node's own trust root, as a registry pull is). The
 * inbox is applied by the general consumer (relay-inbox.ts): a release the
 * node refuses (exit 4: rollback, another channel, expired, tampered) is
 * passed and recorded — with the statement digest and sequence it claims,
 * the peer it came from and when — in `edgectl relay status` and the
 * `edged_relay_releases_refused_total{code}` counter; one that keeps failing
 * otherwise is abandoned after {@link MAX_RELEASE_ATTEMPTS} drains.
 */
export function startReleaseHooks(opts: ReleaseHooksOptions): { stop(): Promise<void>; drain(): Promise<void>; rejections(): InboxRejectionLog } {
  const { config, log } = opts;
  const watch = config.relay.relayActivatedRelease
    ? opts.release.watchActiveRelease({
      stateRoot: config.node.stateRoot,
      intervalMs: config.scheduler.intervalMs,
      // A release packing larger than a segment may be is refused here, with SEGMENT_TOO_LARGE, not by every peer.
      maxBytes: config.relay.maxSegmentBytes,
      onRelease: async (p) => {
        const info = await opts.engine.enqueue(p.bytes, "release");
        log.info({ event: "release_relayed", segment_id: info.id, statement_digest: p.statementDigest, sequence: p.sequence, created: info.created }, "active release queued for every peer");
      },
      onError: (e, message) => log.warn({ event: "release_relay_failed", error: messageOf(e) }, message),
    })
    : undefined;
  const release: InboxApplier = {
    apply: async (entry) => {
      const bytes = await opts.store.get(entry.segment.id);
      await opts.release.activateRelayedRelease({ stateRoot: config.node.stateRoot, bytes, maxBytes: config.relay.maxSegmentBytes });
      log.info({ event: "relayed_release_activated", segment_id: entry.segment.id, from: entry.from }, "relayed release activated");
    },
    describe: async (entry) => {
      // The port may bring its own reader (tests); the default only reads the bytes, under the hostile-input limits.
      const bytes = await opts.store.get(entry.segment.id);
      const d = await (opts.release.describeRelayedRelease ? opts.release.describeRelayedRelease(bytes, config.relay.maxSegmentBytes) : describeRelayedRelease(bytes, config.relay.maxSegmentBytes));
      return { statement_digest: d.statementDigest, sequence: d.sequence };
    },
  };
  const consumer: InboxConsumer = startInboxConsumer({
    inbox: opts.inbox, log, intervalMs: opts.intervalMs ?? config.scheduler.intervalMs,
    appliers: config.relay.activateRelayedReleases ? { release } : {},
  });
  return {
    drain: () => consumer.drain(),
    rejections: () => consumer.rejections(),
    stop: async () => {
      await consumer.stop();
      await watch?.stop();
    },
  };
}
