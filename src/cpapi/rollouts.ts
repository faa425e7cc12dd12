import { z } from "zod";
import { Cursor, Labels, NodeId, ReleaseId, Timestamp } from "./common.js";
import { LIFECYCLE_PHASES } from "./nodes.js";

/**
 * Fleet rollouts (docs/rollouts.md): a plan moves a frozen set of nodes to one
 * release in stages; each stage is one batch of nodes followed by its gates
 * (time soak, manual approval, behaviour). Names follow the original where it
 * had them (phases, stuck_plans, recover strategies); the original's `metric`
 * gate is our `behaviour` gate.
 */

/** `plan-` + 16 hex, chosen by the server. */
export const PlanId = z.string().regex(/^plan-[0-9a-f]{16}$/, "a plan id is plan- followed by 16 lowercase hex digits");
export type PlanId = z.infer<typeof PlanId>;

/** A stage id: short and path-safe (it appears in /stages/:stage_id). */
export const StageId = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "a stage id is 1–63 of a-z 0-9 . _ - starting with a letter or digit");
export type StageId = z.infer<typeof StageId>;

export const MAX_PLAN_NODES = 100_000;
export const MAX_STAGES = 32;

/** Exactly one of the keys of `obj` must be present (so an ambiguous body is a 400 naming both). */
function exactlyOne<T extends Record<string, unknown>>(keys: readonly (keyof T & string)[]) {
  return (obj: T, ctx: z.RefinementCtx) => {
    const present = keys.filter((k) => obj[k] !== undefined);
    if (present.length !== 1) ctx.addIssue({ code: "custom", message: `exactly one of ${keys.join(", ")} is required`, path: present.length > 1 ? [present[1]!] : [] });
  };
}

/** Who the plan targets: a label selector (every label must match) or an explicit list. Membership is frozen at creation. */
export const RolloutTarget = z
  .strictObject({
    selector: Labels.optional(),
    nodes: z.array(NodeId).min(1).max(MAX_PLAN_NODES).optional(),
  })
  .superRefine(exactlyOne(["selector", "nodes"]));
export type RolloutTarget = z.infer<typeof RolloutTarget>;

/**
 * How far a stage takes the rollout, CUMULATIVELY over the frozen membership:
 * `percent` (rounded up, so 1 % of 3 nodes is 1 node) or `count`. The last
 * stage must reach every member (`{"percent": 100}`).
 */
export const BatchSize = z
  .strictObject({
    percent: z.number().gt(0).max(100).optional(),
    count: z.number().int().min(1).max(MAX_PLAN_NODES).optional(),
  })
  .superRefine(exactlyOne(["percent", "count"]));
export type BatchSize = z.infer<typeof BatchSize>;

export const BEHAVIOUR_METRICS = ["deny_rate", "tool_error_rate", "activation_success"] as const;
export type BehaviourMetric = (typeof BEHAVIOUR_METRICS)[number];

/** A stage gate: every gate of a stage must pass (in the same evaluation) before the next stage starts. */
export const GateSpec = z.discriminatedUnion("kind", [
  /** Passes when `seconds` have elapsed since the stage's batch finished. */
  z.strictObject({ kind: z.literal("time_soak"), seconds: z.number().int().min(0).max(30 * 86400) }),
  /** Passes when an operator approves the stage (POST …/stages/:stage_id/approve). */
  z.strictObject({ kind: z.literal("manual") }),
  /**
   * Compares the new release's cohort with the rest of the fleet on a "bad
   * rate" (deny rate, tool-call error rate, activation FAILURE rate for
   * `activation_success`): `ratio` passes when cohort/rest ≤ threshold,
   * `delta` when cohort − rest ≤ threshold. Each side needs `min_samples`
   * (decisions, tool calls or activations attempted) in the window, else the
   * gate waits; it never passes on no data.
   */
  z.strictObject({
    kind: z.literal("behaviour"),
    metric: z.enum(BEHAVIOUR_METRICS),
    comparison: z.enum(["ratio", "delta"]),
    threshold: z.number().min(0).max(1_000_000),
    min_samples: z.number().int().min(1).max(1_000_000_000),
    /** Only metrics from the last `window_seconds` (and after the batch finished) count. */
    window_seconds: z.number().int().min(1).max(30 * 86400).default(3600),
  }),
]);
export type GateSpec = z.infer<typeof GateSpec>;
export type GateKind = GateSpec["kind"];

export const StageSpec = z.strictObject({
  stage_id: StageId,
  batch: BatchSize,
  gates: z.array(GateSpec).max(8).default([]),
});
export type StageSpec = z.infer<typeof StageSpec>;

/** When the failure budget is spent (more failed/stuck nodes than it allows), the plan rolls back by itself. */
export const FailureBudget = z
  .strictObject({
    max_failures: z.number().int().min(0).max(MAX_PLAN_NODES).optional(),
    /** A fraction of the frozen membership, rounded down (fixed at creation). */
    max_failure_fraction: z.number().min(0).max(1).optional(),
  })
  .superRefine(exactlyOne(["max_failures", "max_failure_fraction"]));
export type FailureBudget = z.infer<typeof FailureBudget>;

/** What happens to a node that matches the selector after creation: nothing (`ignore`) or it joins the next batch not yet started. */
export const LATE_JOINER_POLICIES = ["ignore", "include_next_batch"] as const;
export type LateJoinerPolicy = (typeof LATE_JOINER_POLICIES)[number];

/** POST /v1/rollouts (rollout:manage). */
export const CreateRolloutRequest = z.strictObject({
  release_id: ReleaseId,
  /** Where a rollback sends nodes; null = none (a spent budget then fails the plan instead of rolling back). Explicit on purpose. */
  previous_release_id: ReleaseId.nullable(),
  target: RolloutTarget,
  max_concurrency: z.number().int().min(1).max(MAX_PLAN_NODES),
  stages: z.array(StageSpec).min(1).max(MAX_STAGES),
  failure_budget: FailureBudget,
  /** A started node with no report for this long is `stuck` (and counts against the budget). */
  stuck_timeout_seconds: z.number().int().min(1).max(7 * 86400),
  late_joiners: z.enum(LATE_JOINER_POLICIES),
  notes: z.string().max(4096).default(""),
});
export type CreateRolloutRequest = z.infer<typeof CreateRolloutRequest>;
export type CreateRolloutInput = z.input<typeof CreateRolloutRequest>;

export const PLAN_PHASES = ["active", "paused", "gate_wait", "completed", "failed", "cancelled", "rolling_back", "rolled_back"] as const;
export type PlanPhase = (typeof PLAN_PHASES)[number];
/** Phases a plan never leaves. */
export const TERMINAL_PLAN_PHASES = ["completed", "cancelled", "rolled_back"] as const satisfies readonly PlanPhase[];

export const NODE_STATES = ["pending", "in_progress", "succeeded", "failed", "stuck", "retried", "rolled_back", "skipped"] as const;
export type NodeState = (typeof NODE_STATES)[number];

export const RollbackOutcome = z.enum(["pending", "confirmed", "failed", "abandoned"]);

export const RolloutNode = z.looseObject({
  node_id: NodeId,
  /** Index of the stage whose batch holds the node. */
  batch: z.number().int(),
  state: z.enum(NODE_STATES),
  attempts: z.number().int(),
  last_phase: z.enum(LIFECYCLE_PHASES).nullable(),
  last_progress_at: Timestamp.nullable(),
  stuck_since: Timestamp.nullable(),
  detail: z.string(),
  late_joiner: z.boolean(),
  rollback: RollbackOutcome.nullable(),
});
export type RolloutNode = z.infer<typeof RolloutNode>;

/** status: passed; waiting (time, approval, not enough data); failed (a behaviour gate's evidence says stop: the plan rolls back). */
export const GateResult = z.looseObject({ kind: z.enum(["time_soak", "manual", "behaviour"]), status: z.enum(["passed", "waiting", "failed"]), passed: z.boolean(), detail: z.string() });
export type GateResult = z.infer<typeof GateResult>;

export const STAGE_PHASES = ["pending", "open", "gate_wait", "passed"] as const;
export type StagePhase = (typeof STAGE_PHASES)[number];

export const RolloutStage = z.looseObject({
  stage_id: StageId,
  stage_phase: z.enum(STAGE_PHASES),
  /** Cumulative members covered once this stage's batch is done. */
  cumulative: z.number().int(),
  started_at: Timestamp.nullable(),
  batch_finished_at: Timestamp.nullable(),
  passed_at: Timestamp.nullable(),
  manual_approved: z.boolean(),
  gates: z.array(GateResult),
});
export type RolloutStage = z.infer<typeof RolloutStage>;

export const RolloutCounters = z.looseObject({
  members: z.number().int(),
  pending: z.number().int(),
  in_progress: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  stuck: z.number().int(),
  retried: z.number().int(),
  rolled_back: z.number().int(),
  skipped: z.number().int(),
  /** Failures counted against the budget since creation or the last `retry`. */
  budget_used: z.number().int(),
  budget_allowed: z.number().int(),
  /** Every failure since creation (a retry resets budget_used, not this). */
  failures_total: z.number().int(),
});
export type RolloutCounters = z.infer<typeof RolloutCounters>;

/** GET /v1/rollouts/:plan_id (rollout:read); also the answer of create and of every command. */
export const Rollout = z.looseObject({
  plan_id: PlanId,
  release_id: ReleaseId,
  previous_release_id: ReleaseId.nullable(),
  phase: z.enum(PLAN_PHASES),
  current_stage_id: StageId.nullable(),
  max_concurrency: z.number().int(),
  stuck_timeout_seconds: z.number().int(),
  late_joiners: z.enum(LATE_JOINER_POLICIES),
  created_at: Timestamp,
  updated_at: Timestamp,
  stages: z.array(RolloutStage),
  nodes: z.array(RolloutNode),
  counters: RolloutCounters,
  /** Why the plan is where it is (the last phase change's reason). */
  reason: z.string(),
  /** Nodes that matched the selector after creation and were left out (late_joiners = ignore, or no batch left). */
  ignored_late_joiners: z.array(NodeId),
  notes: z.string(),
});
export type Rollout = z.infer<typeof Rollout>;

/** GET /v1/rollouts?cursor=&limit= (rollout:read): newest first, without per-node rows. */
export const RolloutPage = z.looseObject({ rollouts: z.array(Rollout.omit({ nodes: true }).loose()), next_cursor: Cursor.nullable() });
export type RolloutPage = z.infer<typeof RolloutPage>;

/** GET /v1/rollouts/stuck?threshold_seconds=N (default 3600, as the original). */
export const StuckQuery = z.strictObject({ threshold_seconds: z.coerce.number().int().min(1).max(30 * 86400).default(3600) });

export const StuckNode = z.looseObject({ node_id: NodeId, since: Timestamp, last_phase: z.enum(LIFECYCLE_PHASES).nullable(), state: z.enum(NODE_STATES) });

/** The original's stuck-plan fields, plus the structured diagnosis behind `stuck_reason`. */
export const StuckPlan = z.looseObject({
  plan_id: PlanId,
  phase: z.enum(PLAN_PHASES),
  current_stage_id: StageId.nullable(),
  stuck_since: Timestamp,
  stuck_reason: z.string(),
  stuck_nodes: z.array(StuckNode),
});
export type StuckPlan = z.infer<typeof StuckPlan>;
export const StuckPlans = z.looseObject({ stuck_plans: z.array(StuckPlan) });

export const RECOVER_STRATEGIES = ["retry", "rollback", "skip_failed"] as const;
export type RecoverStrategy = (typeof RECOVER_STRATEGIES)[number];

/** POST /v1/rollouts/:plan_id/recover (rollout:manage). */
export const RecoverRequest = z.strictObject({ strategy: z.enum(RECOVER_STRATEGIES), reason: z.string().max(1024).default("") });
export type RecoverRequest = z.infer<typeof RecoverRequest>;

/** Body of pause / resume / cancel / rollback (all optional). */
export const PlanCommandRequest = z.strictObject({ reason: z.string().max(1024).default("") });
export type PlanCommandRequest = z.infer<typeof PlanCommandRequest>;

/** POST /v1/rollouts/:plan_id/stages/:stage_id/approve (rollout:manage). */
export const ApproveRequest = z.strictObject({ reason: z.string().max(1024).default("") });
export type ApproveRequest = z.infer<typeof ApproveRequest>;
/** The original's answer: approved, and whether the approval let the plan move on. */
export const ApproveResult = z.looseObject({ approved: z.boolean(), promoted: z.boolean(), message: z.string() });

/** GET /v1/rollouts/:plan_id/stages/:stage_id/gates (rollout:read), the original's shape. */
export const StageGates = z.looseObject({
  stage_id: StageId,
  stage_phase: z.enum(STAGE_PHASES),
  gates: z.array(GateResult),
  manual_approved: z.boolean(),
  all_passed: z.boolean(),
});
export type StageGates = z.infer<typeof StageGates>;
