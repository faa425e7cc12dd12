import type { LifecyclePhase, NodeState } from "../../cpapi/index.js";
import { assertPlanState } from "./core.js";
import type { Ms, PlanState } from "./types.js";

export interface StuckNodeDiagnosis {
  node_id: string;
  state: NodeState;
  /** Since when the node has not moved. */
  since: Ms;
  last_phase: LifecyclePhase | null;
}

export interface StuckDiagnosis {
  plan_id: string;
  phase: PlanState["phase"];
  current_stage_id: string | null;
  stuck_since: Ms;
  stuck_reason: string;
  stuck_nodes: StuckNodeDiagnosis[];
}

/** Phases a plan can be stuck in: paused is an operator's choice, terminal plans are done (the original's VAL09). */
const WATCHED = new Set<PlanState["phase"]>(["active", "gate_wait", "failed", "rolling_back"]);
const LISTED = 10;

function stuckNodes(p: PlanState, now: Ms, threshold: Ms): StuckNodeDiagnosis[] {
  const out: StuckNodeDiagnosis[] = [];
  for (const n of p.nodes) {
    const waitingRollback = n.rollback === "pending" || n.rollback === "failed";
    const moving = n.state === "in_progress" || waitingRollback;
    const since = n.state === "stuck" ? (n.stuck_since ?? n.last_progress_at) : moving ? n.last_progress_at : null;
    if (since === null) continue;
    if (n.state === "stuck" || now - since >= threshold) out.push({ node_id: n.node_id, state: n.state, since, last_phase: n.last_phase });
  }
  return out;
}

function describe(p: PlanState, nodes: readonly StuckNodeDiagnosis[], idleFor: Ms): string {
  const parts: string[] = [];
  if (nodes.length > 0) {
    const listed = nodes.slice(0, LISTED).map((n) => `${n.node_id} since ${new Date(n.since).toISOString()} (${n.state}, last phase ${n.last_phase ?? "none"})`);
    const more = nodes.length > LISTED ? ` and ${nodes.length - LISTED} more` : "";
    parts.push(`${nodes.length} node(s) without progress: ${listed.join(", ")}${more}`);
  }
  const stage = p.stages[p.current_stage];
  if (p.phase === "gate_wait" && stage !== undefined) {
    const waiting = stage.last_gates.filter((g) => !g.passed).map((g) => `${g.kind} (${g.detail})`);
    parts.push(`stage ${stage.stage_id} waiting on ${waiting.join(", ") || "its gates"}`);
  }
  if (p.phase === "failed") parts.push(`plan failed: ${p.reason}; recover with retry, skip_failed or rollback`);
  if (parts.length === 0) parts.push(`no progress for ${Math.floor(idleFor / 1000)} s`);
  return parts.join("; ");
}

/**
 * Is the plan stuck at `now`, judged with `threshold_seconds` (the query's,
 * independent of the plan's stuck_timeout)? A plan is stuck when it has stuck
 * nodes, nodes (or rollbacks) without progress for the threshold, or has not
 * moved at all for the threshold. Returns the diagnosis, or null.
 */
export function diagnoseStuck(plan: PlanState, now: Ms, threshold_seconds: number): StuckDiagnosis | null {
  assertPlanState(plan);
  if (!WATCHED.has(plan.phase)) return null;
  const threshold = threshold_seconds * 1000;
  const nodes = stuckNodes(plan, now, threshold);
  const idleFor = now - plan.last_progress_at;
  if (nodes.length === 0 && idleFor < threshold) return null;
  const since = Math.min(...nodes.map((n) => n.since), nodes.length === 0 ? plan.last_progress_at : Number.POSITIVE_INFINITY);
  return {
    plan_id: plan.plan_id,
    phase: plan.phase,
    current_stage_id: plan.stages[plan.current_stage]?.stage_id ?? null,
    stuck_since: since,
    stuck_reason: describe(plan, nodes, idleFor),
    stuck_nodes: nodes,
  };
}
