import type { Clock } from "../../lib/index.js";
import type { Store } from "../db/connect.js";
import { assignmentOf } from "./store.js";

interface Entry {
  release_id: string | null;
  at: number;
}

/** Most nodes kept in memory (a fleet of this size polls from one process without a store read per poll). */
const MAX_ENTRIES = 200_000;

/**
 * Each node's assigned release, kept in memory for the poll route (a 304 for
 * a node must cost a map lookup, like the channel's latest). Every write of
 * assignments by THIS process clears the cache (`invalidateAll`, before the
 * answer goes out); another server's writes are seen after at most `ttlMs`,
 * the same rule as the channel cache (LatestCache). A fill that raced an
 * invalidation is dropped (generation), so a stale read is never stored.
 */
export class AssignmentCache {
  private readonly entries = new Map<string, Entry>();
  private generation = 0;

  constructor(private readonly store: Store, private readonly clock: Clock, private readonly ttlMs: number) {}

  /** The node's assigned release id, or null when no plan assigned it one. */
  async releaseFor(nodeId: string): Promise<string | null> {
    const e = this.entries.get(nodeId);
    if (e && this.clock.now() - e.at < this.ttlMs) return e.release_id;
    const generation = this.generation;
    const row = await assignmentOf(this.store.db, nodeId);
    const release_id = row?.release_id ?? null;
    if (this.ttlMs > 0 && generation === this.generation) {
      if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
      this.entries.set(nodeId, { release_id, at: this.clock.now() });
    }
    return release_id;
  }

  /** Called after (and before) every commit that changed assignments in this process. */
  invalidateAll(): void {
    this.generation++;
    this.entries.clear();
  }
}
