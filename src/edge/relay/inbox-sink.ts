import type { SegmentSink, SegmentStore } from "../types.js";
import type { RelayLedger } from "./ledger.js";

/**
 * The receiver's sink: the bytes first (SegmentStore.put is durable: temp →
 * fsync → rename → fsync(dir)), then the inbox record (a durable LMDB commit),
 * and only then does it resolve — so the receiver acknowledges a segment only
 * once both would survive a power loss. A crash between the two leaves stored
 * bytes without an inbox record; the sender got no ack and pushes again, and
 * that push records it (content-addressed, so the bytes are simply there).
 * To make room it lets the store evict only segments this node already relayed
 * and delivered (never unconsumed arrivals, which have no delivered record).
 */
export function ledgerSink(ledger: RelayLedger, store: SegmentStore): SegmentSink {
  return {
    async accept(segment, bytes, from) {
      await store.put(bytes, segment.kind, (id) => ledger.segment(id)?.delivered_at != null);
      return ledger.receive(segment, from);
    },
  };
}
