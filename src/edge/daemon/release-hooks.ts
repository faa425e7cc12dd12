import { AutonomyError, ExitCodes, messageOf } from "../../lib/index.js";
import type { Logger } from "../../observability/index.js";
import type { EdgeConfig } from "../config/schema.js";
import type { SegmentInfo, SegmentStore } from "../types.js";
import type { RelayEngine } from "./ports.js";

/** One arrival in the receiver's inbox (exactly once per segment; `seq` increases). */
export interface InboxArrival {
  seq: number;
  segment: SegmentInfo;
  from: string;
}

/** The inbox side of the ledger the daemon applies, with its durable application cursor. */
export interface RelayInbox {
  /** Arrivals after `afterSeq`, oldest first. */
  inbox(afterSeq: number, limit: number): Promise<InboxArrival[]>;
  /** The last seq the application finished with (0 before the first). */
  applicationCursor(): Promise<number>;
  /** Durably records that everything up to `seq` was applied. */
  advanceApplicationCursor(seq: number): Promise<void>;
}

/** The release relay (src/edge/release-relay.ts): watch this node's activation; activate a relayed release. */
export interface ReleaseRelay {
  watchActiveRelease(opts: { stateRoot: string; onRelease: (packed: { bytes: Uint8Array; statementDigest: string; sequence: number }) => Promise<void>; intervalMs?: number; maxBytes?: number; onError?: (e: unknown, message: string) => void }): { stop(): Promise<void> };
  activateRelayedRelease(opts: { stateRoot: string; bytes: Uint8Array; maxBytes?: number }): Promise<unknown>;
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

/**
 * "Seed once, update everywhere" inside edged: when the node's activation
 * changes and `[relay] relay_activated_release` is on, the active release is
 * enqueued as a `release` segment for every peer; when the inbox receives a
 * `release` segment and `activate_relayed_releases` is on, it is activated
 * (verified under this node's own trust root, as a registry pull is) and the
 * application cursor advances past it. A release the node refuses
 * (verification, exit code 4) is final: logged and passed; any other failure
 * (disk, a busy state lock) leaves the cursor where it was, to try again.
 */
export function startReleaseHooks(opts: ReleaseHooksOptions): { stop(): Promise<void>; drain(): Promise<void> } {
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

  let running: Promise<void> | undefined;
  const drainOnce = async (): Promise<void> => {
    let cursor = await opts.inbox.applicationCursor();
    for (;;) {
      const batch = await opts.inbox.inbox(cursor, 16);
      if (batch.length === 0) return;
      for (const entry of batch) {
        if (entry.segment.kind === "release" && config.relay.activateRelayedReleases && !(await apply(entry))) return;
        await opts.inbox.advanceApplicationCursor(entry.seq);
        cursor = entry.seq;
      }
    }
  };
  /** True when the entry is done with (activated or refused for good). */
  const apply = async (entry: InboxArrival): Promise<boolean> => {
    try {
      const bytes = await opts.store.get(entry.segment.id);
      await opts.release.activateRelayedRelease({ stateRoot: config.node.stateRoot, bytes, maxBytes: config.relay.maxSegmentBytes });
      log.info({ event: "relayed_release_activated", segment_id: entry.segment.id, from: entry.from }, "relayed release activated");
      return true;
    } catch (e) {
      const final = e instanceof AutonomyError && e.exitCode === ExitCodes.verification;
      const fields = { segment_id: entry.segment.id, from: entry.from, code: e instanceof AutonomyError ? String((e as AutonomyError).code) : "INTERNAL", error: messageOf(e) };
      if (final) log.warn({ event: "relayed_release_refused", ...fields }, "relayed release refused by this node's release rules");
      else log.warn({ event: "relayed_release_retry", ...fields }, "relayed release not activated yet (retried)");
      return final;
    }
  };
  const drain = (): Promise<void> => {
    running ??= drainOnce().catch((e: unknown) => log.warn({ event: "inbox_read_failed", error: messageOf(e) }, "reading the relay inbox failed (retried)")).finally(() => {
      running = undefined;
    });
    return running;
  };
  const timer = setInterval(() => void drain(), opts.intervalMs ?? config.scheduler.intervalMs);
  timer.unref();
  return {
    drain,
    stop: async () => {
      clearInterval(timer);
      await running;
      await watch?.stop();
    },
  };
}
