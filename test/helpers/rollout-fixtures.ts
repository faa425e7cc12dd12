// Shared builders for the rollout engine's tests (src/orchestrator/rollouts/*.test.ts).
import { CreateRolloutRequest } from "../../src/cpapi/index.js";
import type { CreateRolloutInput } from "../../src/cpapi/index.js";
import { createPlan } from "../../src/orchestrator/rollouts/index.js";
import type { FleetNode, PlanState } from "../../src/orchestrator/rollouts/index.js";

export const REL_NEW = "rel-00000000000000a1";
/**
 * The plan's rollback target. The engine sees ids only (no sequences); on a served plan it must be the old
 * content re-signed ABOVE REL_NEW's sequence, published standby (docs/rollouts.md, "The rollback target":
 * checked at plan creation, test/orchestrator/rollouts-served.test.ts).
 */
export const REL_OLD = "rel-00000000000000a0";
export const REL_OTHER = "rel-00000000000000ff";
export const PLAN_ID = "plan-0123456789abcdef";
export const T0 = Date.UTC(2026, 11, 5, 10, 0, 0);

/** n nodes node-00 … with labels {site: a|b alternating, ring: canary for the first two}. */
export function fleetOf(n: number): FleetNode[] {
  return Array.from({ length: n }, (_, i) => ({
    node_id: `node-${String(i).padStart(2, "0")}`,
    labels: { site: i % 2 === 0 ? "a" : "b", ...(i < 2 ? { ring: "canary" } : {}) },
  }));
}

export function request(over: Partial<CreateRolloutInput> = {}): CreateRolloutRequest {
  return CreateRolloutRequest.parse({
    release_id: REL_NEW,
    previous_release_id: REL_OLD,
    target: { selector: {} },
    max_concurrency: 2,
    stages: [{ stage_id: "all", batch: { percent: 100 } }],
    failure_budget: { max_failures: 1 },
    stuck_timeout_seconds: 60,
    late_joiners: "ignore",
    ...over,
  });
}

export const known = (id: string): boolean => id === REL_NEW || id === REL_OLD;

export function plan(over: Partial<CreateRolloutInput> = {}, fleet: FleetNode[] = fleetOf(4), now = T0): PlanState {
  return createPlan({ plan_id: PLAN_ID, request: request(over), fleet, releaseExists: known, now });
}

export const sec = (s: number): number => T0 + s * 1000;

import { applyReport } from "../../src/orchestrator/rollouts/index.js";
import type { LifecyclePhase } from "../../src/cpapi/index.js";
import type { ReportResult } from "../../src/orchestrator/rollouts/index.js";

/** A node report at node time `atSec` (seconds after T0), applied at server time `nowSec` (default the same). */
export function report(p: PlanState, node_id: string, phase: LifecyclePhase, atSec: number, opts: { release?: string; nowSec?: number; detail?: string } = {}): ReportResult {
  return applyReport(p, { node_id, release_id: opts.release ?? REL_NEW, phase, detail: opts.detail ?? (phase.endsWith("failed") ? "BUNDLE_DIGEST_MISMATCH: x" : ""), at: sec(atSec) }, sec(opts.nowSec ?? atSec));
}

export const stateOf = (p: PlanState, id: string): string | undefined => p.nodes.find((n) => n.node_id === id)?.state;
export const inState = (p: PlanState, s: string): string[] => p.nodes.filter((n) => n.state === s).map((n) => n.node_id);
