import { batchDone, clonePlan, countFailure, enforceBudget, finishRollbackIfDone, isTerminal, markBatchFinished, moveNode, setPhase, stamp, startRollback } from "./core.js";
import { evaluateGates } from "./gates.js";
import { matchesSelector, newNode } from "./plan.js";
import type { Effect, Ms, Observations, PlanState } from "./types.js";


/** Nodes matching the selector that are not members: ignored (recorded once) or added to the next batch not yet started. */
function handleLateJoiners(p: PlanState, obs: Observations, effects: Effect[]): void {
  if (p.selector === null || obs.fleet === undefined) return;
  if (p.phase !== "active" && p.phase !== "gate_wait" && p.phase !== "paused") return;
  const members = new Set(p.nodes.map((n) => n.node_id));
  const ignored = new Set(p.ignored_late_joiners);
  const selector = p.selector;
  const fresh = [...new Set(obs.fleet.filter((f) => matchesSelector(selector, f.labels)).map((f) => f.node_id))].filter((id) => !members.has(id) && !ignored.has(id)).sort();
  for (const id of fresh) {
    const next = p.stages.findIndex((s, i) => i > p.current_stage && s.phase === "pending");
    const last = p.stages.length - 1;
    // With no later stage, the last one still takes a joiner while its batch runs.
    const batch = next !== -1 ? next : p.current_stage === last && p.stages[last]?.batch_finished_at === null ? last : -1;
    if (p.late_joiners === "ignore" || batch === -1) {
      p.ignored_late_joiners.push(id);
      effects.push({ kind: "late_joiner", node_id: id, action: "ignored", batch: null });
      continue;
    }
    p.nodes.push(newNode(id, batch, true));
    for (let i = batch; i < p.stages.length; i++) {
      const s = p.stages[i];
      if (s !== undefined) s.cumulative += 1;
    }
    effects.push({ kind: "late_joiner", node_id: id, action: "included", batch });
  }
}

/** Confirms rollbacks from the nodes' heartbeats: a node now running the previous release is back. */
function confirmRollbacks(p: PlanState, obs: Observations, now: Ms, effects: Effect[]): void {
  if (p.phase !== "rolling_back" || obs.node_releases === undefined) return;
  for (const n of p.nodes) {
    if ((n.rollback === "pending" || n.rollback === "failed") && obs.node_releases[n.node_id] === p.previous_release_id) {
      n.rollback = "confirmed";
      n.detail = "";
      p.last_progress_at = now;
      effects.push({ kind: "rollback_outcome", node_id: n.node_id, outcome: "confirmed" });
    }
  }
  finishRollbackIfDone(p, now, effects);
}

/**
 * A started node whose heartbeat shows it running the plan's release has
 * activated it, whether or not its `activated` ack arrived: a control plane
 * killed (or stopping) in the middle of a node's activation never gets that
 * ack, and a node does not resend acks, so without this the node stayed
 * in_progress, then stuck, holding its batch (and its slot) forever — VAL11
 * found it. A stuck node confirmed this way was counted against the budget
 * when it got stuck and is not refunded (as a stuck node that reports late).
 */
function confirmActivations(p: PlanState, obs: Observations, now: Ms, effects: Effect[]): void {
  if (obs.node_releases === undefined) return;
  for (const n of p.nodes) {
    if ((n.state !== "in_progress" && n.state !== "stuck") || n.rollback !== null) continue;
    if (obs.node_releases[n.node_id] !== p.release_id) continue;
    moveNode(p, n, "succeeded", now, effects);
    n.last_progress_at = now;
    n.detail = "activation confirmed by the node's heartbeat (its activated ack never arrived)";
  }
  markBatchFinished(p, now);
}

/** A started node with no progress for stuck_timeout is stuck (and counts against the budget). */
function detectStuck(p: PlanState, now: Ms, effects: Effect[]): void {
  for (const n of p.nodes) {
    if (n.state !== "in_progress" || n.last_progress_at === null) continue;
    if (now - n.last_progress_at < p.stuck_timeout_ms) continue;
    moveNode(p, n, "stuck", now, effects);
    n.stuck_since = n.last_progress_at;
    n.detail = `no report for ${Math.floor((now - n.last_progress_at) / 1000)} s (last phase: ${n.last_phase ?? "none"})`;
    countFailure(p);
  }
}

/**
 * Starts pending and retried nodes of the open batches, in plan order, up to
 * max_concurrency in flight. A stuck node keeps its slot: it may still be
 * activating, and a late report takes it back to in_progress.
 */
function startNodes(p: PlanState, now: Ms, effects: Effect[]): void {
  let slots = p.max_concurrency - p.nodes.filter((n) => n.state === "in_progress" || n.state === "stuck").length;
  for (const n of p.nodes) {
    if (slots <= 0) break;
    if (n.batch > p.current_stage || (n.state !== "pending" && n.state !== "retried")) continue;
    moveNode(p, n, "in_progress", now, effects);
    n.attempts += 1;
    n.last_progress_at = now;
    n.last_phase = null;
    n.detail = "";
    effects.push({ kind: "start", node_id: n.node_id, release_id: p.release_id, attempt: n.attempts });
    slots -= 1;
  }
}

/** Stage by stage: start nodes while the batch runs; once it is done, judge its gates and open the next stage. */
function advance(p: PlanState, now: Ms, obs: Observations, effects: Effect[]): void {
  for (;;) {
    const i = p.current_stage;
    const stage = p.stages[i];
    if (stage === undefined) return;
    if (!batchDone(p, i)) {
      startNodes(p, now, effects);
      if (p.phase === "gate_wait") setPhase(p, "active", "batch running", now, effects);
      return;
    }
    markBatchFinished(p, now);
    const gates = evaluateGates(p, i, now, obs);
    stage.last_gates = gates.map((g) => ({ kind: g.kind, status: g.status, passed: g.passed, detail: g.detail }));
    const failed = gates.find((g) => g.status === "failed");
    if (failed !== undefined) {
      const why = `stage ${stage.stage_id}: ${failed.kind} gate failed: ${failed.detail}`;
      if (p.previous_release_id !== null) startRollback(p, `${why}; automatic rollback to ${p.previous_release_id}`, now, effects);
      else setPhase(p, "failed", `${why}; no previous release to roll back to`, now, effects);
      return;
    }
    if (!gates.every((g) => g.passed)) {
      setPhase(p, "gate_wait", `stage ${stage.stage_id}: waiting for its gates`, now, effects);
      return;
    }
    stage.phase = "passed";
    stage.passed_at = now;
    p.last_progress_at = now;
    effects.push({ kind: "stage_passed", stage_id: stage.stage_id });
    const next = p.stages[i + 1];
    if (next === undefined) {
      setPhase(p, "completed", `every stage passed; ${p.release_id} rolled out`, now, effects);
      return;
    }
    p.current_stage = i + 1;
    next.phase = "open";
    next.started_at = now;
    if (p.phase === "gate_wait") setPhase(p, "active", `stage ${next.stage_id} started`, now, effects);
  }
}

/**
 * The scheduler step: given the plan, the time and what was observed (metrics,
 * the nodes' current releases, the fleet), decide what happens next: late
 * joiners, stuck nodes, the failure budget, rollback confirmations, which
 * nodes to start and whether a stage's gates let the next batch go. Pure and
 * deterministic; a terminal plan comes back unchanged with no effects.
 */
export function tick(plan: PlanState, now: Ms, obs: Observations = {}): { state: PlanState; effects: Effect[] } {
  if (isTerminal(plan.phase)) return { state: clonePlan(plan), effects: [] };
  const p = clonePlan(plan);
  const effects: Effect[] = [];
  handleLateJoiners(p, obs, effects);
  if (p.phase === "active" || p.phase === "gate_wait" || p.phase === "paused") {
    confirmActivations(p, obs, now, effects);
    detectStuck(p, now, effects);
  }
  enforceBudget(p, now, effects);
  confirmRollbacks(p, obs, now, effects);
  if (p.phase === "active" || p.phase === "gate_wait") advance(p, now, obs, effects);
  stamp(plan, p, now);
  return { state: p, effects };
}
