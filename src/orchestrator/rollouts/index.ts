/**
 * The fleet-rollout engine (docs/rollouts.md): pure and deterministic. No
 * database, no HTTP, no clock: every step is `(state, input, now) → {state,
 * effects}` over plain JSON state, so the server stores the state, performs
 * the effects and calls `tick` from its scheduler, and a restarted process
 * resumes from exactly what was stored.
 */
export { createPlan, matchesSelector, memberOrderKey, cumulativeSizes } from "./plan.js";
export type { CreatePlanInput } from "./plan.js";
export { applyReport } from "./report.js";
export type { ReportOutcome, ReportResult } from "./report.js";
export { tick } from "./tick.js";
export { pause, resume, cancel, rollback, recover, approveStage } from "./commands.js";
export type { ApproveResult } from "./commands.js";
export { evaluateGates, compareBehaviour, behaviourSides, sideOf } from "./gates.js";
export type { GateEvaluation, GateStatus, Side } from "./gates.js";
export { diagnoseStuck } from "./stuck.js";
export type { StuckDiagnosis, StuckNodeDiagnosis } from "./stuck.js";
export { toRollout, toRolloutSummary, toStuckPlan, stageGates, countersOf } from "./wire.js";
export { parsePlanState, PlanStateSchema } from "./state-schema.js";
export { NODE_TRANSITIONS, PLAN_TRANSITIONS, isTerminal, assertPlanState } from "./core.js";
export { RolloutError, ROLLOUT_ERROR_CODES, ROLLOUT_ERROR_STATUS, rolloutErrorStatus } from "./errors.js";
export type { RolloutErrorCode } from "./errors.js";
export { PLAN_STATE_VERSION } from "./types.js";
export type { PlanState, NodeRecord, StageRecord, GateOutcome, FleetNode, MetricBucket, Observations, NodeReport, Effect, Transition, Ms } from "./types.js";
