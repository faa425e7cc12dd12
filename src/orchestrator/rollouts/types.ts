import type { BehaviourMetric, GateSpec, LateJoinerPolicy, LifecyclePhase, NodeState, PlanPhase, StagePhase } from "../../cpapi/index.js";

/**
 * The engine's state: plain JSON (numbers, strings, booleans, arrays, plain
 * objects; no Date, Map or undefined), so a store can persist it as one
 * document and a restarted (or SIGKILLed) scheduler resumes from exactly what
 * was stored. Times are milliseconds since the epoch, always passed in by the
 * caller (`now`), never read from a clock.
 */
export type Ms = number;

/** Bumped when the shape changes incompatibly; `assertPlanState` refuses other versions. */
export const PLAN_STATE_VERSION = 1;

export interface NodeRecord {
  node_id: string;
  /** Index of the stage whose batch holds the node. */
  batch: number;
  state: NodeState;
  /** How many times the node was started (retries included). */
  attempts: number;
  /** Last lifecycle phase reported for the plan's release (or the previous one while rolling back). */
  last_phase: LifecyclePhase | null;
  /** Server time of the last progress (start or report): the stuck timer runs from here. */
  last_progress_at: Ms | null;
  /** The node's own timestamp of its last applied report, to spot duplicates and stale reports. */
  last_report_at: Ms | null;
  stuck_since: Ms | null;
  /** Why the node is where it is (a failure's code and line, a stuck diagnosis, "skipped by recover"). */
  detail: string;
  late_joiner: boolean;
  /** Set once a rollback was issued to the node: did it come back to the previous release? */
  rollback: "pending" | "confirmed" | "failed" | "abandoned" | null;
}

export interface StageRecord {
  stage_id: string;
  gates: GateSpec[];
  /** Members covered once this stage's batch is done (cumulative). */
  cumulative: number;
  phase: StagePhase;
  started_at: Ms | null;
  batch_finished_at: Ms | null;
  passed_at: Ms | null;
  manual_approved: boolean;
  approved_reason: string;
  /** The latest evaluation of the gates (kept for GET …/gates and the status view). */
  last_gates: GateOutcome[];
}

export interface GateOutcome {
  kind: GateSpec["kind"];
  /** passed; waiting (time, approval, not enough data); failed (a behaviour gate's evidence says stop). */
  status: "passed" | "waiting" | "failed";
  passed: boolean;
  detail: string;
}

export interface PlanState {
  version: typeof PLAN_STATE_VERSION;
  plan_id: string;
  release_id: string;
  previous_release_id: string | null;
  phase: PlanPhase;
  /** The phase to go back to on resume (paused keeps it), and why the plan is where it is. */
  reason: string;
  current_stage: number;
  max_concurrency: number;
  stuck_timeout_ms: number;
  late_joiners: LateJoinerPolicy;
  /** The selector of a selector target (late joiners are matched against it); null for an explicit list. */
  selector: Record<string, string> | null;
  budget_allowed: number;
  /** Failures (failed or stuck transitions) since creation or the last `retry`. */
  budget_used: number;
  failures_total: number;
  stages: StageRecord[];
  /** Deterministic order: by SHA-256 of plan_id + node_id (spreads batches across the id space). */
  nodes: NodeRecord[];
  /** Node ids seen matching the selector after creation and left out (late_joiners = ignore). */
  ignored_late_joiners: string[];
  created_at: Ms;
  updated_at: Ms;
  /** Last time anything moved (a node started or changed state, a stage passed): the plan-level stuck timer. */
  last_progress_at: Ms;
  notes: string;
}

/** A node as the fleet sees it: what membership and late joiners are computed from. */
export interface FleetNode {
  node_id: string;
  labels: Readonly<Record<string, string>>;
}

/**
 * One node's behaviour counters over one time bucket, for the behaviour gate
 * (the server sums them from the nodes' own telemetry: policy decisions and
 * denies, tool calls and tool errors, activations attempted and succeeded).
 */
export interface MetricBucket {
  node_id: string;
  /** The release the node ran during the bucket; cohort = the plan's release, rest = anything else. */
  release_id: string | null;
  from: Ms;
  to: Ms;
  decisions: number;
  denies: number;
  tool_calls: number;
  tool_errors: number;
  activations_attempted: number;
  activations_succeeded: number;
}

/** What the scheduler sees at a tick, all optional (absent = not observed this tick). */
export interface Observations {
  /** Behaviour counters (any nodes, in or out of the plan). */
  metrics?: readonly MetricBucket[];
  /** Each node's current activation (from heartbeats): confirms rollbacks. */
  node_releases?: Readonly<Record<string, string | null>>;
  /** The current fleet: late joiners are the nodes matching the selector that are not members. */
  fleet?: readonly FleetNode[];
}

/** A node's report: the body of POST /v1/nodes/:node_id/ack, with `at` parsed. */
export interface NodeReport {
  node_id: string;
  release_id: string;
  phase: LifecyclePhase;
  detail: string;
  /** The node's own timestamp (ms). */
  at: Ms;
}

/** What the caller must do after a transition (store writes are the caller's, effects are the rest). */
export type Effect =
  /** Tell the node to move to the release (the node still verifies it itself). */
  | { kind: "start"; node_id: string; release_id: string; attempt: number }
  /** Send the node back to the previous release. */
  | { kind: "rollback"; node_id: string; release_id: string }
  | { kind: "phase_changed"; from: PlanPhase; to: PlanPhase; reason: string }
  | { kind: "node_changed"; node_id: string; from: NodeState; to: NodeState }
  /** A node sent back is on the previous release again (its report or its heartbeat says so), or could not get there. */
  | { kind: "rollback_outcome"; node_id: string; outcome: "confirmed" | "failed" }
  | { kind: "stage_passed"; stage_id: string }
  | { kind: "budget_spent"; used: number; allowed: number }
  | { kind: "late_joiner"; node_id: string; action: "included" | "ignored"; batch: number | null };

export interface Transition {
  state: PlanState;
  effects: Effect[];
}

export type { BehaviourMetric };
