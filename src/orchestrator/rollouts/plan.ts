import { createHash } from "node:crypto";
import type { CreateRolloutRequest } from "../../cpapi/index.js";
import { RolloutError } from "./errors.js";
import { PLAN_STATE_VERSION } from "./types.js";
import type { FleetNode, Ms, NodeRecord, PlanState, StageRecord } from "./types.js";

export interface CreatePlanInput {
  /** Chosen by the caller (the server draws it at random): the engine never invents ids. */
  plan_id: string;
  /** The request as parsed by cpapi's CreateRolloutRequest. */
  request: CreateRolloutRequest;
  /** Every enrolled node with its labels at creation: the membership is frozen from it. */
  fleet: readonly FleetNode[];
  /** Is this release id published? (release_id and previous_release_id must be.) */
  releaseExists: (release_id: string) => boolean;
  now: Ms;
}

/** True when every label of the selector is on the node with the same value (an empty selector matches all). */
export function matchesSelector(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector).every(([k, v]) => Object.hasOwn(labels, k) && labels[k] === v);
}

/** The deterministic order of a plan's members: by SHA-256(plan_id, node_id), so batches spread over the id space yet replay identically. */
export function memberOrderKey(plan_id: string, node_id: string): string {
  return createHash("sha256").update(`${plan_id}\n${node_id}`).digest("hex");
}

function orderMembers(plan_id: string, ids: readonly string[]): string[] {
  const keyed = ids.map((id) => ({ id, key: memberOrderKey(plan_id, id) }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return keyed.map((k) => k.id);
}

function invalid(field: string, message: string): RolloutError {
  return new RolloutError("ROLLOUT_PLAN_INVALID", `${field}: ${message}`, { field });
}

function checkReleases(req: CreateRolloutRequest, releaseExists: (id: string) => boolean): void {
  if (!releaseExists(req.release_id)) throw new RolloutError("ROLLOUT_RELEASE_UNKNOWN", `release_id: no published release ${req.release_id}`, { field: "release_id" });
  const prev = req.previous_release_id;
  if (prev === null) return;
  if (prev === req.release_id) throw invalid("previous_release_id", "must differ from release_id (a rollback to the same release changes nothing)");
  if (!releaseExists(prev)) throw new RolloutError("ROLLOUT_RELEASE_UNKNOWN", `previous_release_id: no published release ${prev}`, { field: "previous_release_id" });
}

/** The frozen membership: the explicit list (each enrolled, no duplicates) or every node matching the selector. */
function resolveMembers(req: CreateRolloutRequest, fleet: readonly FleetNode[]): string[] {
  const enrolled = new Set(fleet.map((n) => n.node_id));
  const { nodes, selector } = req.target;
  let ids: string[];
  if (nodes !== undefined) {
    const seen = new Set<string>();
    nodes.forEach((id, i) => {
      if (seen.has(id)) throw invalid(`target.nodes[${i}]`, `${id} is listed twice`);
      if (!enrolled.has(id)) throw new RolloutError("ROLLOUT_NODE_UNKNOWN", `target.nodes[${i}]: no enrolled node ${id}`, { field: `target.nodes[${i}]`, node_id: id });
      seen.add(id);
    });
    ids = [...nodes];
  } else {
    ids = fleet.filter((n) => matchesSelector(selector ?? {}, n.labels)).map((n) => n.node_id);
    ids = [...new Set(ids)];
  }
  if (ids.length === 0) throw new RolloutError("ROLLOUT_MEMBERSHIP_EMPTY", "target: the plan would have no nodes", { field: "target" });
  return ids;
}

/** Cumulative batch ends per stage; percentages round up (so a 1 % canary of a small fleet is one node). */
export function cumulativeSizes(req: CreateRolloutRequest, members: number): number[] {
  const out: number[] = [];
  req.stages.forEach((s, i) => {
    const raw = s.batch.percent !== undefined ? Math.ceil((s.batch.percent * members) / 100 - 1e-9) : Math.min(s.batch.count ?? 0, members);
    const size = Math.max(1, Math.min(members, raw));
    const prev = out[i - 1] ?? 0;
    if (size < prev) throw invalid(`stages[${i}].batch`, `covers ${size} member(s), fewer than stage ${i - 1}'s ${prev} (batches are cumulative)`);
    out.push(size);
  });
  const last = out[out.length - 1] ?? 0;
  if (last !== members) throw invalid(`stages[${out.length - 1}].batch`, `the last stage must cover every member (${members}), it covers ${last}; use {"percent": 100}`);
  return out;
}

function budgetOf(req: CreateRolloutRequest, members: number): number {
  const b = req.failure_budget;
  if (b.max_failures !== undefined) {
    if (b.max_failures > members) {
      throw new RolloutError("ROLLOUT_BUDGET_EXCEEDS_MEMBERS", `failure_budget.max_failures: ${b.max_failures} is more than the plan's ${members} member(s)`, { field: "failure_budget.max_failures" });
    }
    return b.max_failures;
  }
  return Math.floor((b.max_failure_fraction ?? 0) * members + 1e-9);
}

function checkStages(req: CreateRolloutRequest): void {
  const seen = new Set<string>();
  req.stages.forEach((s, i) => {
    if (seen.has(s.stage_id)) throw invalid(`stages[${i}].stage_id`, `${s.stage_id} is used twice`);
    seen.add(s.stage_id);
  });
  if (req.stages.length === 0) throw invalid("stages", "a plan needs at least one stage");
}

function newNode(node_id: string, batch: number, late: boolean): NodeRecord {
  return { node_id, batch, state: "pending", attempts: 0, last_phase: null, last_progress_at: null, last_report_at: null, stuck_since: null, detail: "", late_joiner: late, rollback: null };
}

export { newNode };

/**
 * Builds a plan from a parsed request and the fleet as it is now. Throws a
 * RolloutError naming the field for every invalid plan; the plan starts
 * `active` with stage 0 open and nothing started (the first tick starts nodes).
 */
export function createPlan(input: CreatePlanInput): PlanState {
  const { request: req, now } = input;
  checkReleases(req, input.releaseExists);
  if (!Number.isInteger(req.max_concurrency) || req.max_concurrency < 1) {
    throw new RolloutError("ROLLOUT_CONCURRENCY_INVALID", `max_concurrency: ${req.max_concurrency} is not an integer ≥ 1`, { field: "max_concurrency" });
  }
  if (!Number.isInteger(req.stuck_timeout_seconds) || req.stuck_timeout_seconds < 1) throw invalid("stuck_timeout_seconds", "must be an integer ≥ 1");
  checkStages(req);
  const members = orderMembers(input.plan_id, resolveMembers(req, input.fleet));
  const budget = budgetOf(req, members.length);
  const ends = cumulativeSizes(req, members.length);
  const stages: StageRecord[] = req.stages.map((s, i) => ({
    stage_id: s.stage_id,
    gates: s.gates,
    cumulative: ends[i] ?? members.length,
    phase: i === 0 ? "open" : "pending",
    started_at: i === 0 ? now : null,
    batch_finished_at: null,
    passed_at: null,
    manual_approved: false,
    approved_reason: "",
    last_gates: [],
  }));
  const nodes = members.map((id, i) => newNode(id, ends.findIndex((end) => i < end), false));
  return {
    version: PLAN_STATE_VERSION,
    plan_id: input.plan_id,
    release_id: req.release_id,
    previous_release_id: req.previous_release_id,
    phase: "active",
    reason: "created",
    current_stage: 0,
    max_concurrency: req.max_concurrency,
    stuck_timeout_ms: req.stuck_timeout_seconds * 1000,
    late_joiners: req.late_joiners,
    selector: req.target.selector !== undefined ? { ...req.target.selector } : null,
    budget_allowed: budget,
    budget_used: 0,
    failures_total: 0,
    stages,
    nodes,
    ignored_late_joiners: [],
    created_at: now,
    updated_at: now,
    last_progress_at: now,
    notes: req.notes,
  };
}
