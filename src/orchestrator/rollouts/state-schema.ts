import { z } from "zod";
import { GateSpec, LATE_JOINER_POLICIES, LIFECYCLE_PHASES, NODE_STATES, PLAN_PHASES, STAGE_PHASES } from "../../cpapi/index.js";
import { fieldProblems, formatProblems } from "../../lib/index.js";
import { RolloutError } from "./errors.js";
import { PLAN_STATE_VERSION } from "./types.js";
import type { PlanState } from "./types.js";

/**
 * The full shape of a stored plan state, checked when the store reads a row
 * back (after a restart or a SIGKILL): a corrupt or foreign row is refused
 * with every bad path named, instead of failing later inside a step. Each
 * step only re-checks the cheap invariants (`assertPlanState`).
 */
const ms = z.number().int().nonnegative();
const NodeRecordSchema = z.strictObject({
  node_id: z.string().min(1),
  batch: z.number().int().nonnegative(),
  state: z.enum(NODE_STATES),
  attempts: z.number().int().nonnegative(),
  last_phase: z.enum(LIFECYCLE_PHASES).nullable(),
  last_progress_at: ms.nullable(),
  last_report_at: z.number().int().nullable(),
  stuck_since: ms.nullable(),
  detail: z.string(),
  late_joiner: z.boolean(),
  rollback: z.enum(["pending", "confirmed", "failed", "abandoned"]).nullable(),
});
const GateOutcomeSchema = z.strictObject({ kind: z.enum(["time_soak", "manual", "behaviour"]), status: z.enum(["passed", "waiting", "failed"]), passed: z.boolean(), detail: z.string() });
const StageRecordSchema = z.strictObject({
  stage_id: z.string().min(1),
  gates: z.array(GateSpec),
  cumulative: z.number().int().nonnegative(),
  phase: z.enum(STAGE_PHASES),
  started_at: ms.nullable(),
  batch_finished_at: ms.nullable(),
  passed_at: ms.nullable(),
  manual_approved: z.boolean(),
  approved_reason: z.string(),
  last_gates: z.array(GateOutcomeSchema),
});
export const PlanStateSchema = z
  .strictObject({
    version: z.literal(PLAN_STATE_VERSION),
    plan_id: z.string().min(1),
    release_id: z.string().min(1),
    previous_release_id: z.string().min(1).nullable(),
    phase: z.enum(PLAN_PHASES),
    reason: z.string(),
    current_stage: z.number().int().nonnegative(),
    max_concurrency: z.number().int().min(1),
    stuck_timeout_ms: z.number().int().min(1),
    late_joiners: z.enum(LATE_JOINER_POLICIES),
    selector: z.record(z.string(), z.string()).nullable(),
    budget_allowed: z.number().int().nonnegative(),
    budget_used: z.number().int().nonnegative(),
    failures_total: z.number().int().nonnegative(),
    stages: z.array(StageRecordSchema).min(1),
    nodes: z.array(NodeRecordSchema).min(1),
    ignored_late_joiners: z.array(z.string()),
    created_at: ms,
    updated_at: ms,
    last_progress_at: ms,
    notes: z.string(),
  })
  .superRefine((p, ctx) => {
    if (p.current_stage >= p.stages.length) ctx.addIssue({ code: "custom", path: ["current_stage"], message: "beyond the last stage" });
    const ids = new Set<string>();
    p.nodes.forEach((n, i) => {
      if (ids.has(n.node_id)) ctx.addIssue({ code: "custom", path: ["nodes", i, "node_id"], message: `${n.node_id} appears twice` });
      ids.add(n.node_id);
      if (n.batch >= p.stages.length) ctx.addIssue({ code: "custom", path: ["nodes", i, "batch"], message: "no such stage" });
    });
  });

/**
 * Reads a stored plan state (the parsed JSON of a store row). Throws
 * ROLLOUT_STATE_INVALID naming every bad path; never returns a partly valid state.
 */
export function parsePlanState(json: unknown): PlanState {
  const r = PlanStateSchema.safeParse(json);
  if (!r.success) throw new RolloutError("ROLLOUT_STATE_INVALID", `stored rollout plan state: ${formatProblems(fieldProblems(r.error.issues))}`);
  return r.data;
}
