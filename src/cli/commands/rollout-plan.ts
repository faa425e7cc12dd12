import type { CreateRolloutInput, GateSpec } from "../../cpapi/index.js";
import { UsageError } from "../../lib/index.js";
import { parseDuration } from "../../sign/index.js";

/** The flags of `autonomy rollout create` that shape the plan. */
export interface PlanFlags {
  release: string;
  previous: string;
  selector: string[];
  nodes?: string;
  maxConcurrency: string;
  batches: string;
  failureBudget: string;
  stuckTimeout: string;
  soak?: string;
  approval?: boolean;
  behaviour: string[];
  minSamples: string;
  window: string;
  lateJoiners: string;
  notes?: string;
}

function positiveInt(flag: string, v: string, min = 1): number {
  if (!/^\d+$/.test(v) || Number(v) < min) throw new UsageError(`${flag} ${v}: expected an integer of at least ${min}`, `e.g. ${flag} ${Math.max(min, 1)}`);
  return Number(v);
}

function seconds(flag: string, v: string): number {
  const ms = parseDuration(v);
  if (ms < 1000) throw new UsageError(`${flag} ${v}: expected at least 1s`, `e.g. ${flag} 10m`);
  return Math.floor(ms / 1000);
}

/** `10%,50%,100%` or counts `1,10,100%`: cumulative batches, the last must reach everyone (100%). */
export function parseBatches(v: string): Array<{ percent: number } | { count: number }> {
  const parts = v.split(",").map((s) => s.trim());
  return parts.map((p, i) => {
    const pct = /^(\d+(?:\.\d+)?)%$/.exec(p);
    if (pct) {
      const n = Number(pct[1]);
      if (n <= 0 || n > 100) throw new UsageError(`--batches: ${p} (batch ${i + 1}) is not a percentage in (0, 100]`, "e.g. --batches 10%,50%,100%");
      return { percent: n };
    }
    if (/^\d+$/.test(p) && Number(p) >= 1) return { count: Number(p) };
    throw new UsageError(`--batches: ${JSON.stringify(p)} (batch ${i + 1}) is neither N% nor a node count`, "e.g. --batches 10%,50%,100% or --batches 1,10,100%");
  });
}

/** `deny_rate<=2x` (ratio), `tool_error_rate<=+0.05` (delta), `activation_success<=1.5x`. */
export function parseBehaviour(v: string, minSamples: number, windowSeconds: number): GateSpec {
  const m = /^(deny_rate|tool_error_rate|activation_success)<=(\+?)(\d+(?:\.\d+)?)(x?)$/.exec(v.replace(/\s+/g, ""));
  if (!m || (m[2] === "+") === (m[4] === "x")) {
    throw new UsageError(`--behaviour ${v}: expected METRIC<=Nx (cohort/rest ratio) or METRIC<=+D (cohort−rest delta), METRIC one of deny_rate, tool_error_rate, activation_success`, "e.g. --behaviour deny_rate<=2x --behaviour tool_error_rate<=+0.05");
  }
  const metric = m[1] as "deny_rate" | "tool_error_rate" | "activation_success";
  return { kind: "behaviour", metric, comparison: m[4] === "x" ? "ratio" : "delta", threshold: Number(m[3]), min_samples: minSamples, window_seconds: windowSeconds };
}

function selectorOf(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf("=");
    if (eq <= 0) throw new UsageError(`--selector ${p}: expected key=value`, "e.g. --selector site=berlin");
    out[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return out;
}

/**
 * The request body of POST /v1/rollouts from the flags. Gates (--soak,
 * --approval, --behaviour) apply after every batch but the last: they decide
 * whether the NEXT batch may start.
 */
export function planRequestOf(f: PlanFlags): CreateRolloutInput {
  const hasSelector = f.selector.length > 0;
  if (hasSelector === (f.nodes !== undefined)) throw new UsageError("give exactly one of --selector and --nodes", "--selector site=a (repeat for AND) or --nodes edge-1,edge-2");
  const batches = parseBatches(f.batches);
  const gates: GateSpec[] = [];
  if (f.soak !== undefined) gates.push({ kind: "time_soak", seconds: seconds("--soak", f.soak) });
  if (f.approval === true) gates.push({ kind: "manual" });
  const windowSeconds = seconds("--window", f.window);
  const minSamples = positiveInt("--min-samples", f.minSamples);
  for (const b of f.behaviour) gates.push(parseBehaviour(b, minSamples, windowSeconds));
  const budget = /^(\d+(?:\.\d+)?)%$/.exec(f.failureBudget);
  if (f.lateJoiners !== "ignore" && f.lateJoiners !== "include_next_batch") throw new UsageError(`--late-joiners ${f.lateJoiners}: expected ignore or include_next_batch`, "e.g. --late-joiners ignore");
  return {
    release_id: f.release,
    previous_release_id: f.previous === "none" ? null : f.previous,
    target: hasSelector ? { selector: selectorOf(f.selector) } : { nodes: (f.nodes ?? "").split(",").map((s) => s.trim()).filter(Boolean) },
    max_concurrency: positiveInt("--max-concurrency", f.maxConcurrency),
    stages: batches.map((batch, i) => ({ stage_id: `batch-${i + 1}`, batch, gates: i < batches.length - 1 ? gates : [] })),
    failure_budget: budget ? { max_failure_fraction: Number(budget[1]) / 100 } : { max_failures: positiveInt("--failure-budget", f.failureBudget, 0) },
    stuck_timeout_seconds: seconds("--stuck-timeout", f.stuckTimeout),
    late_joiners: f.lateJoiners,
    notes: f.notes ?? "",
  };
}
