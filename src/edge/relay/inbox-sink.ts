import { EdgeError } from "../errors.js";
import { diskCost } from "../storage/index.js";
import type { SegmentSink, SegmentStore } from "../types.js";
import type { RelayLedger } from "./ledger.js";

export interface LedgerSinkOptions {
  /**
   * The most disk (docs/segment-store.md "disk cost") one sending peer's
   * unconsumed arrivals may hold. Arrivals the application has not consumed
   * are never evicted, so without a share one peer's flood (of releases that
   * take long to activate, say) would take the whole store from the others and
   * from this node's own enqueues. Undefined: no per-peer bound.
   */
  peerShareBytes?: number;
}

/**
 * The share of the store's ceiling each configured peer's unconsumed arrivals
 * may hold: the ceiling split evenly between the peers and this node's own
 * outbound segments, so every one of them keeps room whatever the others send —
 * but never less than one segment of the largest size a peer may send
 * (`max_segment_bytes`), or a large release could never arrive at all.
 */
export function peerShareOf(ceilingBytes: number, peers: number, maxSegmentBytes: number): number {
  const even = Math.floor(ceilingBytes / (Math.max(1, peers) + 1));
  return Math.min(ceilingBytes, Math.max(even, diskCost(maxSegmentBytes)));
}

/**
 * The receiver's sink: the bytes first (SegmentStore.put is durable: temp →
 * fsync → rename → fsync(dir)), then the inbox record (a durable LMDB commit),
 * and only then does it resolve — so the receiver acknowledges a segment only
 * once both would survive a power loss. A crash between the two leaves stored
 * bytes without an inbox record; the sender got no ack and pushes again, and
 * that push records it (content-addressed, so the bytes are simply there) —
 * and if it never comes, the next start removes the orphan (removeOrphans).
 * To make room the store may evict what no one on this node needs any more
 * (RelayLedger.releasable): segments this node relayed and delivered, and
 * arrivals the application already consumed; never an unconsumed arrival.
 * A peer whose unconsumed arrivals would pass its share is refused
 * (STORAGE_CEILING_EXCEEDED: 507, the sender retries later) before anything
 * is written; a re-push of a segment already in the inbox always passes.
 */
export function ledgerSink(ledger: RelayLedger, store: SegmentStore, opts: LedgerSinkOptions = {}): SegmentSink {
  /** Per peer, the disk cost of accepts in progress (admitted against the share, not yet in the inbox). */
  const pending = new Map<string, number>();
  return {
    async accept(segment, bytes, from) {
      const share = opts.peerShareBytes;
      const cost = share === undefined || ledger.inboxSeqOf(segment.id) !== undefined ? 0 : diskCost(segment.size);
      if (cost > 0 && share !== undefined) {
        const held = ledger.unconsumedBytesFrom(from.id) + (pending.get(from.id) ?? 0);
        if (held + cost > share) {
          throw new EdgeError(
            "STORAGE_CEILING_EXCEEDED",
            `peer ${from.id} already holds ${held} bytes of arrivals this node's application has not consumed yet; its share of the segment store is ${share} bytes, so segment ${segment.id} (${segment.size} bytes) must wait`,
            { details: { peer_id: from.id, segment_id: segment.id, unconsumed_bytes: held, peer_share_bytes: share } },
          );
        }
        pending.set(from.id, (pending.get(from.id) ?? 0) + cost);
      }
      try {
        await store.put(bytes, segment.kind, (id) => ledger.releasable(id));
        return await ledger.receive(segment, from);
      } finally {
        if (cost > 0) {
          const left = (pending.get(from.id) ?? 0) - cost;
          if (left > 0) pending.set(from.id, left);
          else pending.delete(from.id);
        }
      }
    },
  };
}
