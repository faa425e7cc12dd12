import type { RecoverStrategy } from "../../cpapi/index.js";
import { assertNotTerminal, clonePlan, finishRollbackIfDone, markBatchFinished, moveNode, resendRollback, setPhase, stamp, startRollback } from "./core.js";
import { RolloutError } from "./errors.js";
import { tick } from "./tick.js";
import type { Effect, Ms, Observations, PlanState, Transition } from "./types.js";

function illegal(p: PlanState, command: string): RolloutError {
  return new RolloutError("ROLLOUT_ILLEGAL_PHASE", `plan ${p.plan_id} is ${p.phase}: ${command} is not allowed`, { plan_id: p.plan_id, phase: p.phase, command });
}

/** Runs a command on a copy; a terminal plan refuses every command. */
function command(plan: PlanState, now: Ms, run: (p: PlanState, effects: Effect[]) => void): Transition {
  const p = clonePlan(plan);
  assertNotTerminal(p);
  const effects: Effect[] = [];
  run(p, effects);
  stamp(plan, p, now);
  return { state: p, effects };
}

const why = (what: string, reason: string): string => (reason ? `${what}: ${reason}` : what);

/** active | gate_wait → paused: no node is started until resume (started nodes go on; their reports still count). */
export function pause(plan: PlanState, now: Ms, reason = ""): Transition {
  return command(plan, now, (p, effects) => {
    if (p.phase !== "active" && p.phase !== "gate_wait") throw illegal(p, "pause");
    setPhase(p, "paused", why("paused", reason), now, effects);
  });
}

/** paused → active (the next tick decides whether it is really waiting on gates). */
export function resume(plan: PlanState, now: Ms, reason = ""): Transition {
  return command(plan, now, (p, effects) => {
    if (p.phase !== "paused") throw illegal(p, "resume");
    setPhase(p, "active", why("resumed", reason), now, effects);
  });
}

/** → cancelled (terminal): nothing more is started; nodes not yet started are skipped, started ones keep what they have. */
export function cancel(plan: PlanState, now: Ms, reason = ""): Transition {
  return command(plan, now, (p, effects) => {
    if (p.phase === "rolling_back") throw illegal(p, "cancel");
    for (const n of p.nodes) if (n.state === "pending") moveNode(p, n, "skipped", now, effects);
    for (const n of p.nodes) if (n.state === "retried") n.detail = "cancelled before its retry started";
    setPhase(p, "cancelled", why("cancelled", reason), now, effects);
  });
}

/** Manual rollback: every started node goes back to previous_release_id; while already rolling back, re-sends it to the nodes not yet back. */
export function rollback(plan: PlanState, now: Ms, reason = ""): Transition {
  return command(plan, now, (p, effects) => {
    if (p.phase === "rolling_back") return resendRollback(p, now, effects);
    startRollback(p, why("manual rollback", reason), now, effects);
  });
}

/** retry: failed and stuck nodes start again and the budget counts from zero; while rolling back, the rollback is re-sent. */
function retry(p: PlanState, now: Ms, reason: string, effects: Effect[]): void {
  if (p.phase === "rolling_back") return resendRollback(p, now, effects);
  for (const n of p.nodes) if (n.state === "failed" || n.state === "stuck") moveNode(p, n, "retried", now, effects);
  p.budget_used = 0;
  setPhase(p, "active", why("recover: retry", reason), now, effects);
}

/** skip_failed: failed and stuck nodes are given up and the plan goes on (budget from zero); while rolling back, nodes not back are abandoned. */
function skipFailed(p: PlanState, now: Ms, reason: string, effects: Effect[]): void {
  if (p.phase === "rolling_back") {
    for (const n of p.nodes) {
      if (n.rollback === "pending" || n.rollback === "failed") {
        n.rollback = "abandoned";
        n.detail = why("rollback abandoned by recover skip_failed", reason);
      }
    }
    return finishRollbackIfDone(p, now, effects);
  }
  for (const n of p.nodes) {
    if (n.state !== "failed" && n.state !== "stuck") continue;
    moveNode(p, n, "skipped", now, effects);
    n.detail = why(`skipped by recover (${n.detail})`, reason);
  }
  p.budget_used = 0;
  setPhase(p, "active", why("recover: skip_failed", reason), now, effects);
  markBatchFinished(p, now);
}

/** POST …/recover: the original's three strategies. */
export function recover(plan: PlanState, strategy: RecoverStrategy, now: Ms, reason = ""): Transition {
  if (strategy === "rollback") return rollback(plan, now, why("recover: rollback", reason));
  return command(plan, now, (p, effects) => (strategy === "retry" ? retry(p, now, reason, effects) : skipFailed(p, now, reason, effects)));
}

export interface ApproveResult extends Transition {
  approved: boolean;
  /** The approval let the plan move past the stage (its gates all passed in the tick that followed). */
  promoted: boolean;
  message: string;
}

/**
 * Approves a stage's manual gate, then runs a tick so the plan moves on at
 * once when every other gate has passed too. Approving ahead of time is
 * allowed; approving twice changes nothing.
 */
export function approveStage(plan: PlanState, stage_id: string, now: Ms, reason = "", obs: Observations = {}): ApproveResult {
  const approved = command(plan, now, (p) => {
    const stage = p.stages.find((s) => s.stage_id === stage_id);
    if (stage === undefined) throw new RolloutError("ROLLOUT_STAGE_NOT_FOUND", `plan ${p.plan_id} has no stage ${stage_id}`, { plan_id: p.plan_id, stage_id });
    if (!stage.gates.some((g) => g.kind === "manual")) throw new RolloutError("ROLLOUT_NO_MANUAL_GATE", `stage ${stage_id} of plan ${p.plan_id} has no manual gate`, { stage_id });
    if (stage.manual_approved) return;
    stage.manual_approved = true;
    stage.approved_reason = reason;
    p.last_progress_at = now;
  });
  const ticked = tick(approved.state, now, obs);
  const stage = ticked.state.stages.find((s) => s.stage_id === stage_id);
  const promoted = stage?.phase === "passed";
  const waiting = stage?.last_gates.filter((g) => !g.passed).map((g) => `${g.kind}: ${g.detail}`) ?? [];
  const blocker = ticked.state.phase !== "active" && ticked.state.phase !== "gate_wait" ? `the plan is ${ticked.state.phase}` : waiting.length > 0 ? waiting.join("; ") : "its batch is not done yet";
  const message = promoted ? `stage ${stage_id} passed` : `stage ${stage_id} approved; ${blocker}`;
  return { state: ticked.state, effects: [...approved.effects, ...ticked.effects], approved: true, promoted, message };
}
