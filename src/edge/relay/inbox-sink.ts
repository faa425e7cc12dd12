import type { SegmentSink, SegmentStore } from "../types.js";
import type { RelayLedger } from "./ledger.js";

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
 */
export function ledgerSink(ledger: RelayLedger, store: SegmentStore): SegmentSink {
  return {
    async accept(segment, bytes, from) {
      await store.put(bytes, segment.kind, (id) => ledger.releasable(id));
      return ledger.receive(segment, from);
    },
  };
}
