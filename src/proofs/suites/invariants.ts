/**
 * "No rollout left inconsistent", as pure functions over what the API
 * answers (GET /v1/rollouts/:id, each node's assignment read with its own
 * credential, each node's acks): every function returns the violations it
 * found, one readable line each, so a suite counts them and a test can feed
 * them a doctored observation and see them fire. The rules restate
 * docs/rollouts.md independently of the engine's own tables (an oracle that
 * shares the engine's code would share its bugs).
 */
import type { NodeState, PlanPhase, Rollout } from "../../cpapi/index.js";

/** Every legal node step (docs/rollouts.md, "Node states"). */
const NODE_STEPS: Readonly<Record<NodeState, readonly NodeState[]>> = {
  pending: ["in_progress", "skipped"],
  in_progress: ["succeeded", "failed", "stuck", "rolled_back"],
  succeeded: ["rolled_back"],
  failed: ["retried", "skipped", "rolled_back", "succeeded"],
  stuck: ["in_progress", "succeeded", "failed", "retried", "skipped", "rolled_back"],
  retried: ["in_progress", "rolled_back"],
  rolled_back: [],
  skipped: ["rolled_back"],
};

/** Every legal plan step (docs/rollouts.md, "Plan phases"). */
const PLAN_STEPS: Readonly<Record<PlanPhase, readonly PlanPhase[]>> = {
  active: ["paused", "gate_wait", "completed", "failed", "cancelled", "rolling_back"],
  gate_wait: ["active", "paused", "completed", "failed", "cancelled", "rolling_back"],
  paused: ["active", "failed", "cancelled", "rolling_back"],
  failed: ["active", "cancelled", "rolling_back"],
  rolling_back: ["rolled_back"],
  completed: [],
  cancelled: [],
  rolled_back: [],
};

const ROLLBACK_STEPS: Readonly<Record<string, readonly string[]>> = {
  none: ["pending"],
  pending: ["confirmed", "failed", "abandoned"],
  failed: ["pending", "confirmed", "abandoned"],
  confirmed: [],
  abandoned: [],
};

const TERMINAL: ReadonlySet<PlanPhase> = new Set(["completed", "cancelled", "rolled_back"]);

/** Is `to` reachable from `from` in zero or more steps of `steps`? */
function reachable<S extends string>(steps: Readonly<Record<S, readonly S[]>>, from: S, to: S): boolean {
  const seen = new Set<S>([from]);
  const queue: S[] = [from];
  while (queue.length > 0) {
    const s = queue.shift() as S;
    if (s === to) return true;
    for (const n of steps[s] ?? []) {
      if (!seen.has(n)) {
        seen.add(n);
        queue.push(n);
      }
    }
  }
  return false;
}

const STATES: readonly NodeState[] = ["pending", "in_progress", "succeeded", "failed", "stuck", "retried", "rolled_back", "skipped"];

/**
 * One plan on its own: node ids unique, counters equal to the nodes, each
 * node's state consistent with its attempts, its rollback field and the
 * plan's phase, and (when `assignments` is given) each node's assignment the
 * one its state implies: not started → `pin` (what it ran at creation),
 * started → the plan's release, sent back → the previous release.
 */
export function planViolations(p: Rollout, assignments?: ReadonlyMap<string, string | null>, pin?: string | null): string[] {
  const v: string[] = [];
  const at = (node: string, what: string): void => void v.push(`${p.plan_id} (${p.phase}) node ${node}: ${what}`);
  const ids = p.nodes.map((n) => n.node_id);
  if (new Set(ids).size !== ids.length) v.push(`${p.plan_id}: a node is listed twice (${ids.length} rows, ${new Set(ids).size} nodes)`);
  const c = p.counters as Record<string, number>;
  if (c["members"] !== p.nodes.length) v.push(`${p.plan_id}: counters.members ${String(c["members"])} but ${p.nodes.length} nodes`);
  let sum = 0;
  for (const s of STATES) {
    const n = p.nodes.filter((x) => x.state === s).length;
    sum += c[s] ?? 0;
    if (c[s] !== n) v.push(`${p.plan_id}: counters.${s} ${String(c[s])} but ${n} nodes ${s}`);
  }
  if (sum !== p.nodes.length) v.push(`${p.plan_id}: the state counters add up to ${sum}, not ${p.nodes.length}`);
  if ((c["budget_used"] ?? 0) > (c["failures_total"] ?? 0)) v.push(`${p.plan_id}: budget_used ${String(c["budget_used"])} > failures_total ${String(c["failures_total"])}`);
  const stageIndex = p.stages.findIndex((s) => s.stage_id === p.current_stage_id);
  const backPhase = p.phase === "rolling_back" || p.phase === "rolled_back";
  for (const n of p.nodes) {
    if (n.state === "pending" && n.attempts !== 0) at(n.node_id, `pending after ${n.attempts} start(s)`);
    if (["in_progress", "succeeded", "failed", "stuck", "retried", "rolled_back"].includes(n.state) && n.attempts < 1) at(n.node_id, `${n.state} but never started`);
    if ((n.rollback !== null) !== (n.state === "rolled_back")) at(n.node_id, `state ${n.state} with rollback ${String(n.rollback)}`);
    if (!backPhase && n.state === "rolled_back") at(n.node_id, "rolled back while the plan is not rolling back");
    if (backPhase && n.state !== "rolled_back" && !(n.state === "skipped" && n.attempts === 0)) at(n.node_id, `${n.state} (attempts ${n.attempts}) left behind by the rollback`);
    if (p.phase === "rolled_back" && n.rollback !== null && n.rollback !== "confirmed" && n.rollback !== "abandoned") at(n.node_id, `rollback ${n.rollback} in a rolled_back plan`);
    if (p.phase === "completed" && !["succeeded", "failed", "skipped"].includes(n.state)) at(n.node_id, `${n.state} in a completed plan`);
    if (p.phase === "cancelled" && n.state === "pending") at(n.node_id, "pending in a cancelled plan");
    if (!TERMINAL.has(p.phase) && !backPhase && stageIndex >= 0 && n.batch > stageIndex && n.state !== "pending") at(n.node_id, `${n.state} in batch ${n.batch}, beyond the current stage ${stageIndex}`);
    if (assignments !== undefined) {
      const want = n.rollback !== null ? p.previous_release_id : n.attempts > 0 ? p.release_id : (pin ?? null);
      const got = assignments.get(n.node_id);
      if (got !== want) at(n.node_id, `assigned ${String(got)}, but its state (${n.state}, attempts ${n.attempts}, rollback ${String(n.rollback)}) means ${String(want)}`);
    }
  }
  if (p.phase === "rolling_back" && !p.nodes.some((n) => n.rollback === "pending" || n.rollback === "failed")) v.push(`${p.plan_id}: rolling_back with every node back (it should be rolled_back)`);
  if (p.phase === "completed" && p.stages.some((s) => s.stage_phase !== "passed")) v.push(`${p.plan_id}: completed with a stage not passed`);
  return v;
}

/** Across plans: a node is a member of at most one live plan (its assignment has one owner). */
export function crossPlanViolations(plans: readonly Rollout[]): string[] {
  const owner = new Map<string, string>();
  const v: string[] = [];
  for (const p of plans) {
    if (TERMINAL.has(p.phase)) continue;
    for (const n of p.nodes) {
      const o = owner.get(n.node_id);
      if (o !== undefined) v.push(`node ${n.node_id} is in two live plans: ${o} and ${p.plan_id}`);
      owner.set(n.node_id, p.plan_id);
    }
  }
  return v;
}

/**
 * What the API acknowledged before a restart is still there after it, and
 * nothing went backwards: the plan exists; a terminal plan is exactly as it
 * was; the phase, every node's state and rollback outcome only moved along
 * legal steps; attempts never shrank; no node appeared or vanished.
 */
export function regressions(before: Rollout, after: Rollout | undefined): string[] {
  if (after === undefined) return [`${before.plan_id}: acknowledged before the restart, missing after it`];
  const v: string[] = [];
  if (TERMINAL.has(before.phase)) {
    if (JSON.stringify(before) !== JSON.stringify(after)) v.push(`${before.plan_id}: was ${before.phase} (terminal) and changed across the restart`);
    return v;
  }
  if (!reachable(PLAN_STEPS, before.phase, after.phase)) v.push(`${before.plan_id}: phase went from ${before.phase} back to ${after.phase}`);
  const later = new Map(after.nodes.map((n) => [n.node_id, n]));
  if (after.nodes.length !== before.nodes.length) v.push(`${before.plan_id}: ${before.nodes.length} nodes before, ${after.nodes.length} after`);
  for (const b of before.nodes) {
    const a = later.get(b.node_id);
    if (a === undefined) {
      v.push(`${before.plan_id} node ${b.node_id}: vanished`);
      continue;
    }
    if (!reachable(NODE_STEPS, b.state, a.state)) v.push(`${before.plan_id} node ${b.node_id}: went from ${b.state} back to ${a.state}`);
    if (a.attempts < b.attempts) v.push(`${before.plan_id} node ${b.node_id}: attempts went from ${b.attempts} down to ${a.attempts}`);
    if (!reachable(ROLLBACK_STEPS, b.rollback ?? "none", a.rollback ?? "none")) v.push(`${before.plan_id} node ${b.node_id}: rollback went from ${String(b.rollback)} back to ${String(a.rollback)}`);
  }
  return v;
}

/** Every ack the server acknowledged (200) to a device before the restart is still in its node's path after it. */
export function lostAcks(acknowledged: ReadonlyMap<string, number>, storedAfter: ReadonlyMap<string, number>): string[] {
  const v: string[] = [];
  for (const [node, n] of acknowledged) {
    const kept = storedAfter.get(node) ?? 0;
    if (kept < n) v.push(`node ${node}: ${n} ack(s) acknowledged before the restart, ${kept} stored after it`);
  }
  return v;
}
