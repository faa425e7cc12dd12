import type { Rollout, RolloutCounters, StageGates, StuckPlan } from "../../cpapi/index.js";
import { NODE_STATES } from "../../cpapi/index.js";
import { assertPlanState } from "./core.js";
import { RolloutError } from "./errors.js";
import { evaluateGates } from "./gates.js";
import type { StuckDiagnosis } from "./stuck.js";
import type { Ms, Observations, PlanState } from "./types.js";

const iso = (ms: Ms): string => new Date(ms).toISOString();
const isoOrNull = (ms: Ms | null): string | null => (ms === null ? null : iso(ms));

export function countersOf(p: PlanState): RolloutCounters {
  const c = Object.fromEntries(NODE_STATES.map((s) => [s, 0])) as Record<(typeof NODE_STATES)[number], number>;
  for (const n of p.nodes) c[n.state] += 1;
  return { members: p.nodes.length, ...c, budget_used: p.budget_used, budget_allowed: p.budget_allowed, failures_total: p.failures_total };
}

/** The wire view (cpapi Rollout) of a plan state. */
export function toRollout(p: PlanState): Rollout {
  assertPlanState(p);
  return {
    plan_id: p.plan_id,
    release_id: p.release_id,
    previous_release_id: p.previous_release_id,
    phase: p.phase,
    current_stage_id: p.stages[p.current_stage]?.stage_id ?? null,
    max_concurrency: p.max_concurrency,
    stuck_timeout_seconds: p.stuck_timeout_ms / 1000,
    late_joiners: p.late_joiners,
    created_at: iso(p.created_at),
    updated_at: iso(p.updated_at),
    stages: p.stages.map((s) => ({
      stage_id: s.stage_id,
      stage_phase: s.phase,
      cumulative: s.cumulative,
      started_at: isoOrNull(s.started_at),
      batch_finished_at: isoOrNull(s.batch_finished_at),
      passed_at: isoOrNull(s.passed_at),
      manual_approved: s.manual_approved,
      gates: s.last_gates.map((g) => ({ ...g })),
    })),
    nodes: p.nodes.map((n) => ({
      node_id: n.node_id,
      batch: n.batch,
      state: n.state,
      attempts: n.attempts,
      last_phase: n.last_phase,
      last_progress_at: isoOrNull(n.last_progress_at),
      stuck_since: isoOrNull(n.stuck_since),
      detail: n.detail,
      late_joiner: n.late_joiner,
      rollback: n.rollback,
    })),
    counters: countersOf(p),
    reason: p.reason,
    ignored_late_joiners: [...p.ignored_late_joiners],
    notes: p.notes,
  };
}

/** The list view (GET /v1/rollouts): everything but the per-node rows. */
export function toRolloutSummary(p: PlanState): Omit<Rollout, "nodes"> {
  const { nodes: _nodes, ...rest } = toRollout(p);
  return rest;
}

export function toStuckPlan(d: StuckDiagnosis): StuckPlan {
  return { ...d, stuck_since: iso(d.stuck_since), stuck_nodes: d.stuck_nodes.map((n) => ({ ...n, since: iso(n.since) })) };
}

/** GET …/stages/:stage_id/gates: the gates evaluated now (a passed stage reports its gates as they were when it passed). */
export function stageGates(p: PlanState, stage_id: string, now: Ms, obs: Observations = {}): StageGates {
  assertPlanState(p);
  const i = p.stages.findIndex((s) => s.stage_id === stage_id);
  const stage = p.stages[i];
  if (stage === undefined) throw new RolloutError("ROLLOUT_STAGE_NOT_FOUND", `plan ${p.plan_id} has no stage ${stage_id}`, { plan_id: p.plan_id, stage_id });
  const gates = stage.phase === "passed" ? stage.last_gates : evaluateGates(p, i, now, obs);
  return {
    stage_id,
    stage_phase: stage.phase,
    gates: gates.map((g) => ({ kind: g.kind, status: g.status, passed: g.passed, detail: g.detail })),
    manual_approved: stage.manual_approved,
    all_passed: stage.phase === "passed" || (stage.batch_finished_at !== null && gates.every((g) => g.passed)),
  };
}
