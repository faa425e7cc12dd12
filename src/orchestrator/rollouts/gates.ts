import type { GateSpec } from "../../cpapi/index.js";
import type { MetricBucket, Ms, Observations, PlanState, StageRecord } from "./types.js";

/** passed: the gate lets the stage through; waiting: not yet (time, approval, data); failed: the evidence says stop (behaviour gates only). */
export type GateStatus = "passed" | "waiting" | "failed";

export interface GateEvaluation {
  kind: GateSpec["kind"];
  status: GateStatus;
  passed: boolean;
  detail: string;
}

type BehaviourGate = Extract<GateSpec, { kind: "behaviour" }>;

/** One side of the comparison: how many samples (the denominator) and how many of them were bad. */
export interface Side {
  samples: number;
  bad: number;
}

const METRIC_WORDS: Readonly<Record<BehaviourGate["metric"], { rate: string; unit: string }>> = {
  deny_rate: { rate: "policy deny rate", unit: "decisions" },
  tool_error_rate: { rate: "tool-call error rate", unit: "tool calls" },
  activation_success: { rate: "activation failure rate", unit: "activations attempted" },
};

/** The "bad" part of a bucket for a metric: denies of decisions, errors of tool calls, failed of attempted activations. */
export function sideOf(metric: BehaviourGate["metric"], buckets: readonly MetricBucket[]): Side {
  let samples = 0;
  let bad = 0;
  for (const b of buckets) {
    if (metric === "deny_rate") {
      samples += b.decisions;
      bad += b.denies;
    } else if (metric === "tool_error_rate") {
      samples += b.tool_calls;
      bad += b.tool_errors;
    } else {
      samples += b.activations_attempted;
      bad += Math.max(0, b.activations_attempted - b.activations_succeeded);
    }
  }
  return { samples, bad };
}

const fmt = (x: number): string => (Number.isFinite(x) ? x.toFixed(4).replace(/\.?0+$/, "") || "0" : "∞");

/**
 * The comparison itself: rate = bad / samples on each side; `ratio` =
 * cohort / rest (rest 0: 1 when the cohort is 0 too, else ∞), `delta` =
 * cohort − rest; passes when the value ≤ threshold. Either side under
 * `min_samples` waits: no data never passes.
 */
export function compareBehaviour(gate: BehaviourGate, cohort: Side, rest: Side): GateEvaluation {
  const w = METRIC_WORDS[gate.metric];
  const short = [cohort.samples < gate.min_samples ? `the new release's cohort has ${cohort.samples}` : "", rest.samples < gate.min_samples ? `the rest of the fleet has ${rest.samples}` : ""].filter(Boolean);
  if (short.length > 0) {
    return { kind: "behaviour", status: "waiting", passed: false, detail: `waiting for data: ${short.join(" and ")} of the ${gate.min_samples} ${w.unit} needed (${gate.metric})` };
  }
  const c = cohort.bad / cohort.samples;
  const r = rest.bad / rest.samples;
  const value = gate.comparison === "delta" ? c - r : r === 0 ? (c === 0 ? 1 : Number.POSITIVE_INFINITY) : c / r;
  const ok = value <= gate.threshold;
  const sides = `${w.rate} ${fmt(c)} in the cohort (${cohort.samples} ${w.unit}) vs ${fmt(r)} in the rest (${rest.samples})`;
  return { kind: "behaviour", status: ok ? "passed" : "failed", passed: ok, detail: `${sides}: ${gate.comparison} ${fmt(value)} ${ok ? "≤" : ">"} ${fmt(gate.threshold)} allowed` };
}

/** Buckets wholly inside [from, to]. */
function inWindow(b: MetricBucket, from: Ms, to: Ms): boolean {
  return b.from >= from && b.to <= to && b.to >= b.from;
}

/**
 * The cohort is the plan's nodes that succeeded on the new release; the rest
 * is every node (in or out of the plan) observed on another release. Only
 * buckets after the stage's batch finished and within the gate's window count.
 */
export function behaviourSides(plan: PlanState, stage: StageRecord, gate: BehaviourGate, now: Ms, metrics: readonly MetricBucket[]): { cohort: Side; rest: Side } {
  const from = Math.max(stage.batch_finished_at ?? now, now - gate.window_seconds * 1000);
  const succeeded = new Set(plan.nodes.filter((n) => n.state === "succeeded").map((n) => n.node_id));
  const win = metrics.filter((b) => inWindow(b, from, now));
  const cohort = win.filter((b) => b.release_id === plan.release_id && succeeded.has(b.node_id));
  const rest = win.filter((b) => b.release_id !== plan.release_id);
  return { cohort: sideOf(gate.metric, cohort), rest: sideOf(gate.metric, rest) };
}

function evaluateGate(plan: PlanState, stage: StageRecord, gate: GateSpec, now: Ms, obs: Observations): GateEvaluation {
  const finished = stage.batch_finished_at;
  if (gate.kind === "manual") {
    return stage.manual_approved
      ? { kind: "manual", status: "passed", passed: true, detail: `approved${stage.approved_reason ? `: ${stage.approved_reason}` : ""}` }
      : { kind: "manual", status: "waiting", passed: false, detail: "waiting for an operator's approval" };
  }
  if (finished === null) return { kind: gate.kind, status: "waiting", passed: false, detail: "the stage's batch has not finished" };
  if (gate.kind === "time_soak") {
    const soaked = Math.max(0, Math.floor((now - finished) / 1000));
    const ok = now - finished >= gate.seconds * 1000;
    return { kind: "time_soak", status: ok ? "passed" : "waiting", passed: ok, detail: `soaked ${Math.min(soaked, gate.seconds)} of ${gate.seconds} s` };
  }
  if (obs.metrics === undefined) return { kind: "behaviour", status: "waiting", passed: false, detail: `waiting for data: no behaviour metrics observed (${gate.metric})` };
  const { cohort, rest } = behaviourSides(plan, stage, gate, now, obs.metrics);
  return compareBehaviour(gate, cohort, rest);
}

/** Evaluates every gate of a stage at `now` (pure: the plan is not changed). */
export function evaluateGates(plan: PlanState, stageIndex: number, now: Ms, obs: Observations = {}): GateEvaluation[] {
  const stage = plan.stages[stageIndex];
  if (stage === undefined) return [];
  return stage.gates.map((g) => evaluateGate(plan, stage, g, now, obs));
}
