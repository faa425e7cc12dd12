import { AutonomyError, ExitCodes } from "../../lib/index.js";

/** Every code a {@link RolloutError} can carry; docs/errors.md lists each (a test keeps them in step). */
export const ROLLOUT_ERROR_CODES = [
  "ROLLOUT_MEMBERSHIP_EMPTY",
  "ROLLOUT_CONCURRENCY_INVALID",
  "ROLLOUT_BUDGET_EXCEEDS_MEMBERS",
  "ROLLOUT_RELEASE_UNKNOWN",
  "ROLLOUT_NODE_UNKNOWN",
  "ROLLOUT_PLAN_INVALID",
  "ROLLOUT_NOT_FOUND",
  "ROLLOUT_STAGE_NOT_FOUND",
  "ROLLOUT_NODE_NOT_IN_PLAN",
  "ROLLOUT_REPORT_WRONG_RELEASE",
  "ROLLOUT_ILLEGAL_TRANSITION",
  "ROLLOUT_ILLEGAL_PHASE",
  "ROLLOUT_PLAN_TERMINAL",
  "ROLLOUT_NO_MANUAL_GATE",
  "ROLLOUT_NO_PREVIOUS_RELEASE",
  "ROLLOUT_STATE_INVALID",
  "ROLLOUT_ROLLBACK_UNREACHABLE",
] as const;
export type RolloutErrorCode = (typeof ROLLOUT_ERROR_CODES)[number];

const HINTS: Readonly<Record<RolloutErrorCode, string>> = {
  ROLLOUT_MEMBERSHIP_EMPTY: "the target matches no enrolled node; check the selector's labels or the node list (GET /v1/nodes)",
  ROLLOUT_CONCURRENCY_INVALID: "max_concurrency must be an integer of at least 1",
  ROLLOUT_BUDGET_EXCEEDS_MEMBERS: "the failure budget allows more failures than the plan has nodes; lower it (or use max_failure_fraction)",
  ROLLOUT_RELEASE_UNKNOWN: "publish the release first (POST /v1/releases) or fix the id (GET /v1/releases lists them)",
  ROLLOUT_NODE_UNKNOWN: "every node of an explicit target must be enrolled; enroll it or remove it from target.nodes",
  ROLLOUT_PLAN_INVALID: "fix the named field of the plan and create it again",
  ROLLOUT_NOT_FOUND: "no plan has this id; GET /v1/rollouts lists them",
  ROLLOUT_STAGE_NOT_FOUND: "the plan has no stage with this id; GET /v1/rollouts/:plan_id lists its stages",
  ROLLOUT_NODE_NOT_IN_PLAN: "membership is frozen at creation; this node is not part of the plan",
  ROLLOUT_REPORT_WRONG_RELEASE: "the report names a release this plan does not install; it belongs to another plan or is forged",
  ROLLOUT_ILLEGAL_TRANSITION: "the node's state does not allow this step; GET the plan to see the node's state",
  ROLLOUT_ILLEGAL_PHASE: "the plan's phase does not allow this command; GET the plan to see its phase",
  ROLLOUT_PLAN_TERMINAL: "the plan is completed, cancelled or rolled back and never changes again; create a new plan",
  ROLLOUT_NO_MANUAL_GATE: "only a stage with a manual gate can be approved",
  ROLLOUT_NO_PREVIOUS_RELEASE: "the plan was created with previous_release_id null, so there is nothing to roll back to; use cancel or a new plan",
  ROLLOUT_STATE_INVALID: "the stored plan state is not one this engine wrote; restore it from a backup",
  ROLLOUT_ROLLBACK_UNREACHABLE:
    "nodes never activate a sequence at or below the one they run, so a rollback target must be the previous content re-signed ABOVE the plan's release: make one after signing the plan's release with `autonomy release rollback TARGET --to OLD_REF --sequence N` (N above the plan release's sequence), publish it with `autonomy release publish … --standby` (never the channel's latest), and name its release id as previous_release_id",
};

/**
 * HTTP status per code, for the server's `statusOf`: request problems 400,
 * unknown ids 404, a state that forbids the step 409.
 */
export const ROLLOUT_ERROR_STATUS: Readonly<Record<RolloutErrorCode, number>> = {
  ROLLOUT_MEMBERSHIP_EMPTY: 400,
  ROLLOUT_CONCURRENCY_INVALID: 400,
  ROLLOUT_BUDGET_EXCEEDS_MEMBERS: 400,
  ROLLOUT_RELEASE_UNKNOWN: 400,
  ROLLOUT_NODE_UNKNOWN: 400,
  ROLLOUT_PLAN_INVALID: 400,
  ROLLOUT_NOT_FOUND: 404,
  ROLLOUT_STAGE_NOT_FOUND: 404,
  ROLLOUT_NODE_NOT_IN_PLAN: 409,
  ROLLOUT_REPORT_WRONG_RELEASE: 409,
  ROLLOUT_ILLEGAL_TRANSITION: 409,
  ROLLOUT_ILLEGAL_PHASE: 409,
  ROLLOUT_PLAN_TERMINAL: 409,
  ROLLOUT_NO_MANUAL_GATE: 409,
  ROLLOUT_NO_PREVIOUS_RELEASE: 409,
  ROLLOUT_STATE_INVALID: 500,
  ROLLOUT_ROLLBACK_UNREACHABLE: 422,
};

/** A rollout engine error; `details.field` names the request field when one is at fault. */
export class RolloutError extends AutonomyError<RolloutErrorCode> {
  constructor(code: RolloutErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(code, message, { hint: HINTS[code], exitCode: ROLLOUT_ERROR_STATUS[code] < 500 && ROLLOUT_ERROR_STATUS[code] !== 409 ? ExitCodes.usage : ExitCodes.failure, details });
  }
}

/** `statusOf` for problemFromError: the HTTP status of a RolloutError, undefined for anything else. */
export function rolloutErrorStatus(e: AutonomyError): number | undefined {
  return e instanceof RolloutError ? ROLLOUT_ERROR_STATUS[e.code] : undefined;
}
