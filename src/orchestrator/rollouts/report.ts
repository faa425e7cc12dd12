import type { LifecyclePhase } from "../../cpapi/index.js";
import { assertNotTerminal, clonePlan, countFailure, enforceBudget, findNode, finishRollbackIfDone, markBatchFinished, moveNode } from "./core.js";
import { RolloutError } from "./errors.js";
import type { Effect, Ms, NodeRecord, NodeReport, PlanState, Transition } from "./types.js";

/**
 * applied: the report moved the node; progress: it only reset the stuck timer;
 * duplicate / stale: already seen or older than what was applied; superseded:
 * the node reports the new release after it was sent back (it was in flight
 * when the rollback went out; the rollback stays pending). The last three
 * change nothing.
 */
export type ReportOutcome = "applied" | "progress" | "duplicate" | "stale" | "superseded";

export interface ReportResult extends Transition {
  outcome: ReportOutcome;
}

const FAILURES: ReadonlySet<LifecyclePhase> = new Set(["verify_failed", "activate_failed"]);

function kindOf(phase: LifecyclePhase): "success" | "failure" | "progress" {
  return phase === "activated" ? "success" : FAILURES.has(phase) ? "failure" : "progress";
}

/** Duplicate (same phase, same node time) or stale (older than the last applied report): never applied twice, never rewinds. */
function seenBefore(n: NodeRecord, r: NodeReport): ReportOutcome | undefined {
  if (n.last_report_at === null) return undefined;
  if (r.at < n.last_report_at) return "stale";
  if (r.at === n.last_report_at && r.phase === n.last_phase) return "duplicate";
  return undefined;
}

function record(n: NodeRecord, r: NodeReport, now: Ms): void {
  n.last_phase = r.phase;
  n.last_report_at = r.at;
  n.last_progress_at = now;
}

/** A report for the plan's release: the forward path of the node machine. */
function forward(p: PlanState, n: NodeRecord, r: NodeReport, now: Ms, effects: Effect[]): ReportOutcome {
  const kind = kindOf(r.phase);
  const settledSame = (n.state === "succeeded" && kind === "success") || (n.state === "failed" && kind === "failure");
  if (settledSame) return "duplicate";
  // A settled node's poller keeps polling the release it has: progress phases change nothing.
  if (kind === "progress" && (n.state === "succeeded" || n.state === "failed")) return "stale";
  const target = kind === "success" ? "succeeded" : kind === "failure" ? "failed" : "in_progress";
  if (target === "in_progress" && n.state === "in_progress") {
    record(n, r, now);
    p.last_progress_at = now;
    return "progress";
  }
  const wasStuck = n.state === "stuck";
  moveNode(p, n, target, now, effects);
  record(n, r, now);
  if (kind === "failure") {
    n.detail = r.detail;
    // A stuck node was counted when it got stuck: one node, one failure.
    if (!wasStuck) countFailure(p);
  } else if (kind === "success") n.detail = "";
  return target === "in_progress" ? "progress" : "applied";
}

/** A report for the previous release from a node that was sent back: confirms (or fails) the rollback. */
function backward(p: PlanState, n: NodeRecord, r: NodeReport, now: Ms, effects: Effect[]): ReportOutcome {
  const kind = kindOf(r.phase);
  if (n.rollback === "confirmed" || n.rollback === "abandoned") {
    if (kind === "success" || kind === "progress") return "duplicate";
    throw new RolloutError("ROLLOUT_ILLEGAL_TRANSITION", `node ${n.node_id} reported ${r.phase} for ${r.release_id} after its rollback was ${n.rollback}`, { node_id: n.node_id, from: `rollback_${n.rollback}`, to: r.phase });
  }
  record(n, r, now);
  p.last_progress_at = now;
  if (kind === "progress") return "progress";
  n.rollback = kind === "success" ? "confirmed" : "failed";
  n.detail = kind === "success" ? "" : r.detail;
  effects.push({ kind: "rollback_outcome", node_id: n.node_id, outcome: n.rollback });
  return "applied";
}

/**
 * Applies one node report (an ack) to the plan. Hostile or confused reports
 * are typed errors: a node outside the plan (ROLLOUT_NODE_NOT_IN_PLAN), a
 * release this plan does not install (ROLLOUT_REPORT_WRONG_RELEASE), a step
 * the node machine forbids (ROLLOUT_ILLEGAL_TRANSITION), any report to a
 * terminal plan (ROLLOUT_PLAN_TERMINAL). Duplicates and older reports are
 * no-ops reported as such (acks are resent at least once).
 */
export function applyReport(plan: PlanState, report: NodeReport, now: Ms): ReportResult {
  const p = clonePlan(plan);
  assertNotTerminal(p);
  const n = findNode(p, report.node_id);
  const effects: Effect[] = [];
  if (report.release_id === p.release_id && n.rollback !== null) return { state: plan, effects: [], outcome: "superseded" };
  const isForward = report.release_id === p.release_id && n.rollback === null;
  const isBackward = p.previous_release_id !== null && report.release_id === p.previous_release_id && n.rollback !== null;
  if (!isForward && !isBackward) {
    throw new RolloutError("ROLLOUT_REPORT_WRONG_RELEASE", `node ${report.node_id} reported ${report.release_id}, plan ${p.plan_id} ${n.rollback === null ? `installs ${p.release_id}` : `sent it back to ${p.previous_release_id}`}`, {
      node_id: report.node_id,
      release_id: report.release_id,
    });
  }
  const seen = seenBefore(n, report);
  if (seen !== undefined) return { state: plan, effects: [], outcome: seen };
  let outcome: ReportOutcome;
  if (isForward) {
    if (n.state === "pending" || n.state === "retried" || n.state === "skipped") {
      throw new RolloutError("ROLLOUT_ILLEGAL_TRANSITION", `node ${n.node_id} reported ${report.phase} but the plan has not started it (state ${n.state})`, { node_id: n.node_id, from: n.state, to: report.phase });
    }
    outcome = forward(p, n, report, now, effects);
    enforceBudget(p, now, effects);
    markBatchFinished(p, now);
  } else {
    outcome = backward(p, n, report, now, effects);
    finishRollbackIfDone(p, now, effects);
  }
  if (outcome === "duplicate" || outcome === "stale") return { state: plan, effects: [], outcome };
  // An applied or progress report always changes the node (cheaper than comparing the whole plan).
  p.updated_at = now;
  return { state: p, effects, outcome };
}
