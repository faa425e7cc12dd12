import { TERMINAL_PLAN_PHASES } from "../../cpapi/index.js";
import type { NodeState, PlanPhase } from "../../cpapi/index.js";
import { RolloutError } from "./errors.js";
import { PLAN_STATE_VERSION } from "./types.js";
import type { Effect, Ms, NodeRecord, PlanState } from "./types.js";

/**
 * The per-node state machine: every legal step. Anything else is a
 * ROLLOUT_ILLEGAL_TRANSITION, never a silent overwrite.
 */
export const NODE_TRANSITIONS: Readonly<Record<NodeState, readonly NodeState[]>> = {
  pending: ["in_progress", "skipped"],
  in_progress: ["succeeded", "failed", "stuck", "rolled_back"],
  succeeded: ["rolled_back"],
  // A failed node may still succeed: the node retries by itself on its next poll.
  failed: ["retried", "skipped", "rolled_back", "succeeded"],
  // A stuck node that reports again is moving after all.
  stuck: ["in_progress", "succeeded", "failed", "retried", "skipped", "rolled_back"],
  retried: ["in_progress", "rolled_back"],
  rolled_back: [],
  // A node skipped after it was started may hold the new release: a rollback still sends it back.
  skipped: ["rolled_back"],
};

/** The plan phase machine: every legal step (commands, ticks and reports all go through `setPhase`). */
export const PLAN_TRANSITIONS: Readonly<Record<PlanPhase, readonly PlanPhase[]>> = {
  active: ["paused", "gate_wait", "completed", "failed", "cancelled", "rolling_back"],
  gate_wait: ["active", "paused", "completed", "failed", "cancelled", "rolling_back"],
  paused: ["active", "failed", "cancelled", "rolling_back"],
  failed: ["active", "cancelled", "rolling_back"],
  rolling_back: ["rolled_back"],
  completed: [],
  cancelled: [],
  rolled_back: [],
};

export function isTerminal(phase: PlanPhase): boolean {
  return (TERMINAL_PLAN_PHASES as readonly PlanPhase[]).includes(phase);
}

/** Refuses anything this engine did not write (a corrupt row, a future version), before any step. */
export function assertPlanState(x: unknown): asserts x is PlanState {
  const p = x as Partial<PlanState> | null;
  const ok =
    typeof p === "object" && p !== null && p.version === PLAN_STATE_VERSION && typeof p.plan_id === "string" && Array.isArray(p.nodes) && Array.isArray(p.stages) &&
    typeof p.phase === "string" && Object.hasOwn(PLAN_TRANSITIONS, p.phase) && typeof p.current_stage === "number" && p.current_stage >= 0 && p.current_stage < p.stages.length;
  if (!ok) throw new RolloutError("ROLLOUT_STATE_INVALID", `not a version-${PLAN_STATE_VERSION} rollout plan state`);
}

/**
 * Every step works on a copy: the caller's state is never mutated (so a failed
 * step leaves nothing half-done). A node record holds only primitives, so a
 * spread copies it deeply; the small nested parts (stages with their gates,
 * the selector) go through structuredClone. This is the per-ack cost at 1,000
 * nodes: about 5× cheaper than structuredClone of the whole plan.
 */
export function clonePlan(p: PlanState): PlanState {
  assertPlanState(p);
  return {
    ...p,
    selector: p.selector === null ? null : { ...p.selector },
    stages: structuredClone(p.stages),
    nodes: p.nodes.map((n) => ({ ...n })),
    ignored_late_joiners: [...p.ignored_late_joiners],
  };
}

export function assertNotTerminal(p: PlanState): void {
  if (isTerminal(p.phase)) throw new RolloutError("ROLLOUT_PLAN_TERMINAL", `plan ${p.plan_id} is ${p.phase}`, { plan_id: p.plan_id, phase: p.phase });
}

export function setPhase(p: PlanState, to: PlanPhase, reason: string, now: Ms, effects: Effect[]): void {
  if (p.phase === to) return;
  if (!PLAN_TRANSITIONS[p.phase].includes(to)) {
    throw new RolloutError("ROLLOUT_ILLEGAL_PHASE", `plan ${p.plan_id} cannot go from ${p.phase} to ${to}`, { plan_id: p.plan_id, from: p.phase, to });
  }
  effects.push({ kind: "phase_changed", from: p.phase, to, reason });
  p.phase = to;
  p.reason = reason;
  p.last_progress_at = now;
}

export function moveNode(p: PlanState, n: NodeRecord, to: NodeState, now: Ms, effects: Effect[]): void {
  if (!NODE_TRANSITIONS[n.state].includes(to)) {
    throw new RolloutError("ROLLOUT_ILLEGAL_TRANSITION", `node ${n.node_id} cannot go from ${n.state} to ${to} in plan ${p.plan_id}`, { node_id: n.node_id, from: n.state, to });
  }
  effects.push({ kind: "node_changed", node_id: n.node_id, from: n.state, to });
  n.state = to;
  if (to !== "stuck") n.stuck_since = null;
  p.last_progress_at = now;
}

/** Counts a failure (failed or stuck) against the budget. */
export function countFailure(p: PlanState): void {
  p.budget_used += 1;
  p.failures_total += 1;
}

export function findNode(p: PlanState, node_id: string): NodeRecord {
  const n = p.nodes.find((x) => x.node_id === node_id);
  if (n === undefined) throw new RolloutError("ROLLOUT_NODE_NOT_IN_PLAN", `node ${node_id} is not a member of plan ${p.plan_id}`, { node_id, plan_id: p.plan_id });
  return n;
}

/** Sends every node the plan ever started back to the previous release; never-started nodes are skipped. */
export function startRollback(p: PlanState, reason: string, now: Ms, effects: Effect[]): void {
  const prev = p.previous_release_id;
  if (prev === null) throw new RolloutError("ROLLOUT_NO_PREVIOUS_RELEASE", `plan ${p.plan_id} has no previous_release_id to roll back to`, { plan_id: p.plan_id });
  setPhase(p, "rolling_back", reason, now, effects);
  for (const n of p.nodes) {
    if (n.attempts === 0) {
      if (n.state === "pending") moveNode(p, n, "skipped", now, effects);
      continue;
    }
    if (n.state === "rolled_back") continue;
    moveNode(p, n, "rolled_back", now, effects);
    n.rollback = "pending";
    n.last_progress_at = now;
    effects.push({ kind: "rollback", node_id: n.node_id, release_id: prev });
  }
  finishRollbackIfDone(p, now, effects);
}

/** Re-sends the rollback to nodes that have not come back (pending or failed). */
export function resendRollback(p: PlanState, now: Ms, effects: Effect[]): void {
  const prev = p.previous_release_id;
  if (prev === null) throw new RolloutError("ROLLOUT_NO_PREVIOUS_RELEASE", `plan ${p.plan_id} has no previous_release_id`, { plan_id: p.plan_id });
  for (const n of p.nodes) {
    if (n.rollback !== "pending" && n.rollback !== "failed") continue;
    n.rollback = "pending";
    n.last_progress_at = now;
    p.last_progress_at = now;
    effects.push({ kind: "rollback", node_id: n.node_id, release_id: prev });
  }
}

/** rolling_back → rolled_back once every sent-back node is confirmed (or given up by skip_failed). */
export function finishRollbackIfDone(p: PlanState, now: Ms, effects: Effect[]): void {
  if (p.phase !== "rolling_back") return;
  const open = p.nodes.some((n) => n.rollback === "pending" || n.rollback === "failed");
  if (!open) setPhase(p, "rolled_back", `${p.reason}; every node the plan started is back on ${p.previous_release_id}`, now, effects);
}

/**
 * The failure budget: more failures than allowed → automatic rollback (or,
 * with no previous release, the plan fails and starts nothing more).
 */
export function enforceBudget(p: PlanState, now: Ms, effects: Effect[]): void {
  if (p.budget_used <= p.budget_allowed) return;
  if (p.phase !== "active" && p.phase !== "gate_wait" && p.phase !== "paused") return;
  effects.push({ kind: "budget_spent", used: p.budget_used, allowed: p.budget_allowed });
  const why = `failure budget spent: ${p.budget_used} failure(s), ${p.budget_allowed} allowed`;
  if (p.previous_release_id !== null) startRollback(p, `${why}; automatic rollback to ${p.previous_release_id}`, now, effects);
  else setPhase(p, "failed", `${why}; no previous release to roll back to`, now, effects);
}

/** Stamps `updated_at` when the step changed anything. */
export function stamp(before: PlanState, after: PlanState, now: Ms): void {
  if (JSON.stringify(before) !== JSON.stringify(after)) after.updated_at = now;
}

/** A node whose batch no longer waits on it (failures are the budget's business, not the batch's). */
const SETTLED: ReadonlySet<NodeState> = new Set(["succeeded", "failed", "skipped"]);

/** Every node of the batches up to `upTo` is settled. */
export function batchDone(p: PlanState, upTo: number): boolean {
  return p.nodes.every((n) => n.batch > upTo || SETTLED.has(n.state));
}

/**
 * Stamps the current stage's batch as finished the moment its last node
 * settles (a report, a skip), not when the next tick happens to notice: the
 * soak and the behaviour window run from there.
 */
export function markBatchFinished(p: PlanState, now: Ms): void {
  const stage = p.stages[p.current_stage];
  if (stage === undefined || stage.batch_finished_at !== null || stage.phase !== "open") return;
  if (p.phase !== "active" && p.phase !== "gate_wait" && p.phase !== "paused") return;
  if (!batchDone(p, p.current_stage)) return;
  stage.batch_finished_at = now;
  stage.phase = "gate_wait";
}
