import type { PlanState } from "../rollouts/index.js";

/** A plan as committed at one version: the parsed state and the exact JSON text stored. */
export interface CachedPlan {
  version: number;
  state: PlanState;
  json: string;
}

/** Plans kept per process (live plans are few; a full cache is simply emptied). */
const MAX_PLANS = 16;

/**
 * The parsed state of recently stepped plans, keyed by (plan_id, version).
 * An ack at 1,000 nodes otherwise re-reads, JSON-parses and zod-parses a
 * 200 KB document only to step one node. Correct with several servers on one
 * store: a step first reads the row's `version` (under the same lock as
 * before) and uses the cached state only when it is that version; a
 * committed (plan_id, version) names exactly one state, because a version is
 * only ever written once (`WHERE version = v`, optimistic check). Entries are
 * added only AFTER a commit (or from a committed read), never from a
 * transaction that may still roll back. Cached states are never mutated: the
 * engine works on copies (clonePlan).
 */
export class PlanStateCache {
  private readonly plans = new Map<string, CachedPlan>();

  get(planId: string, version: number): CachedPlan | undefined {
    const c = this.plans.get(planId);
    return c !== undefined && c.version === version ? c : undefined;
  }

  put(planId: string, entry: CachedPlan): void {
    const c = this.plans.get(planId);
    if (c !== undefined && c.version > entry.version) return;
    if (c === undefined && this.plans.size >= MAX_PLANS) this.plans.clear();
    this.plans.set(planId, entry);
  }

  /** How many plans are cached (tests). */
  get size(): number {
    return this.plans.size;
  }
}
