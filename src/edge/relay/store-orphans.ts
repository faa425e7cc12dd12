import type { EvictionRecord, SegmentStore } from "../types.js";
import type { RelayLedger } from "./ledger.js";

/**
 * Removes, with an `orphan` eviction record, every stored segment no ledger
 * record names. Both writers store the bytes first and record them second
 * (the receiver's sink: put → inbox entry; enqueue: put → schedule), so a
 * kill between the two leaves bytes nobody references and nobody was told
 * about (no ack to the sender, no answer to the caller): without this they
 * would count against the ceiling forever, never evictable. Removing them is
 * safe — the sender pushes again, the caller enqueues again — and exact: the
 * eviction log says what went and why.
 *
 * Run it only while nothing writes (at start, after both are open, before the
 * receiver and the executor run): a put in progress is exactly such an
 * unreferenced segment for a moment.
 */
export async function removeOrphans(store: SegmentStore, ledger: RelayLedger): Promise<EvictionRecord[]> {
  const removed: EvictionRecord[] = [];
  for (const s of store.list()) {
    if (ledger.references(s.id)) continue;
    const rec = await store.remove(s.id, "orphan");
    if (rec !== undefined) removed.push(rec);
  }
  return removed;
}
