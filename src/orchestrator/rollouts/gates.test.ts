import { describe, expect, it } from "vitest";
import type { GateSpec } from "../../cpapi/index.js";
import { fleetOf, inState, plan, REL_NEW, REL_OLD, report, sec } from "../../../test/helpers/rollout-fixtures.js";
import { compareBehaviour, stageGates, tick } from "./index.js";
import type { MetricBucket, PlanState } from "./index.js";

type Behaviour = Extract<GateSpec, { kind: "behaviour" }>;
const gate = (over: Partial<Behaviour> = {}): Behaviour => ({ kind: "behaviour", metric: "deny_rate", comparison: "ratio", threshold: 2, min_samples: 100, window_seconds: 3600, ...over });

/** A 2-stage plan over 4 nodes whose first stage (1 node) is done at 10 s, with `gates` on it. */
function canaryDone(gates: GateSpec[]): PlanState {
  const p0 = plan({ max_concurrency: 4, stages: [{ stage_id: "canary", batch: { count: 1 }, gates }, { stage_id: "rest", batch: { percent: 100 } }] }, fleetOf(4));
  const t1 = tick(p0, sec(0)).state;
  return report(t1, inState(t1, "in_progress")[0]!, "activated", 10).state;
}
const canaryOf = (p: PlanState): string => p.nodes.find((n) => n.batch === 0)!.node_id;

function bucket(node_id: string, release_id: string, fromSec: number, toSec: number, c: Partial<MetricBucket>): MetricBucket {
  return { node_id, release_id, from: sec(fromSec), to: sec(toSec), decisions: 0, denies: 0, tool_calls: 0, tool_errors: 0, activations_attempted: 0, activations_succeeded: 0, ...c };
}

describe("compareBehaviour", () => {
  it("ratio: passes at or under the threshold, fails over it", () => {
    expect(compareBehaviour(gate(), { samples: 1000, bad: 20 }, { samples: 1000, bad: 10 }).status).toBe("passed");
    const bad = compareBehaviour(gate(), { samples: 1000, bad: 30 }, { samples: 1000, bad: 10 });
    expect(bad.status).toBe("failed");
    expect(bad.detail).toBe("policy deny rate 0.03 in the cohort (1000 decisions) vs 0.01 in the rest (1000): ratio 3 > 2 allowed");
  });
  it("ratio with a rest of zero: 1 when the cohort is zero too, ∞ otherwise", () => {
    expect(compareBehaviour(gate({ threshold: 1 }), { samples: 100, bad: 0 }, { samples: 100, bad: 0 }).status).toBe("passed");
    const inf = compareBehaviour(gate({ threshold: 1000 }), { samples: 100, bad: 1 }, { samples: 100, bad: 0 });
    expect(inf.status).toBe("failed");
    expect(inf.detail).toContain("ratio ∞ >");
  });
  it("delta: cohort − rest against the threshold", () => {
    const g = gate({ metric: "tool_error_rate", comparison: "delta", threshold: 0.05 });
    expect(compareBehaviour(g, { samples: 200, bad: 20 }, { samples: 200, bad: 10 }).status).toBe("passed");
    expect(compareBehaviour(g, { samples: 200, bad: 22 }, { samples: 200, bad: 10 }).status).toBe("failed");
  });
  it("never passes on too few samples: it waits and says which side is short", () => {
    const w = compareBehaviour(gate(), { samples: 99, bad: 0 }, { samples: 5000, bad: 50 });
    expect(w.status).toBe("waiting");
    expect(w.passed).toBe(false);
    expect(w.detail).toBe("waiting for data: the new release's cohort has 99 of the 100 decisions needed (deny_rate)");
    expect(compareBehaviour(gate(), { samples: 0, bad: 0 }, { samples: 0, bad: 0 }).detail).toContain("and the rest of the fleet has 0");
  });
});

describe("stage gates in the scheduler", () => {
  it("time soak: the next stage starts only `seconds` after the batch finished", () => {
    const p = canaryDone([{ kind: "time_soak", seconds: 60 }]);
    const waiting = tick(p, sec(11));
    expect(waiting.state.phase).toBe("gate_wait");
    expect(waiting.state.stages[0]?.last_gates).toEqual([{ kind: "time_soak", status: "waiting", passed: false, detail: "soaked 1 of 60 s" }]);
    // The batch finished with the canary's report at 10 s: the soak runs from there.
    expect(tick(waiting.state, sec(69)).state.phase).toBe("gate_wait");
    const go = tick(waiting.state, sec(70));
    expect(go.state.phase).toBe("active");
    expect(go.state.current_stage).toBe(1);
    expect(go.effects.filter((e) => e.kind === "start")).toHaveLength(3);
  });

  it("manual: waits for approval, then passes", () => {
    const p = tick(canaryDone([{ kind: "manual" }]), sec(11)).state;
    expect(p.phase).toBe("gate_wait");
    expect(stageGates(p, "canary", sec(12))).toEqual({ stage_id: "canary", stage_phase: "gate_wait", gates: [{ kind: "manual", status: "waiting", passed: false, detail: "waiting for an operator's approval" }], manual_approved: false, all_passed: false });
  });

  it("behaviour: waits with no metrics at all (never passes on no data)", () => {
    const p = tick(canaryDone([gate()]), sec(100)).state;
    expect(p.phase).toBe("gate_wait");
    expect(p.stages[0]?.last_gates[0]?.detail).toBe("waiting for data: no behaviour metrics observed (deny_rate)");
  });

  it("behaviour: compares the cohort (members on the new release) with the rest, inside the window and after the batch finished", () => {
    const p = canaryDone([gate({ min_samples: 100, threshold: 1.5 })]);
    const canary = canaryOf(p);
    const metrics = [
      bucket(canary, REL_NEW, 20, 80, { decisions: 100, denies: 2 }),
      // Before the batch finished (10 s): ignored.
      bucket(canary, REL_NEW, 0, 9, { decisions: 1000, denies: 900 }),
      bucket("node-x", REL_OLD, 20, 80, { decisions: 400, denies: 8 }),
      // A node on the new release that is not a succeeded member is not in the cohort.
      bucket("node-stranger", REL_NEW, 20, 80, { decisions: 1000, denies: 1000 }),
    ];
    const t = tick(p, sec(90), { metrics });
    expect(t.state.stages[0]?.last_gates[0]).toMatchObject({ status: "passed" });
    expect(t.state.current_stage).toBe(1);
  });

  it("behaviour: a failing gate (enough data, over the threshold) rolls the plan back by itself", () => {
    const p = canaryDone([gate({ metric: "tool_error_rate", comparison: "delta", threshold: 0.05, min_samples: 10 })]);
    const canary = canaryOf(p);
    const metrics = [bucket(canary, REL_NEW, 20, 80, { tool_calls: 50, tool_errors: 20 }), bucket("node-x", REL_OLD, 20, 80, { tool_calls: 50, tool_errors: 1 })];
    const t = tick(p, sec(90), { metrics });
    expect(t.state.phase).toBe("rolling_back");
    expect(t.state.reason).toMatch(/^stage canary: behaviour gate failed: tool-call error rate 0.4 in the cohort/);
    expect(t.effects).toContainEqual({ kind: "rollback", node_id: canary, release_id: REL_OLD });
  });

  it("behaviour: activation_success compares activation FAILURE rates", () => {
    const p = canaryDone([gate({ metric: "activation_success", comparison: "delta", threshold: 0.1, min_samples: 10 })]);
    const canary = canaryOf(p);
    const metrics = [bucket(canary, REL_NEW, 20, 80, { activations_attempted: 10, activations_succeeded: 5 }), bucket("node-x", REL_OLD, 20, 80, { activations_attempted: 10, activations_succeeded: 10 })];
    const t = tick(p, sec(90), { metrics });
    expect(t.state.phase).toBe("rolling_back");
    expect(t.state.reason).toContain("activation failure rate 0.5 in the cohort");
  });

  it("every gate must pass in the same evaluation", () => {
    const p = canaryDone([{ kind: "time_soak", seconds: 30 }, gate({ min_samples: 1 })]);
    const canary = canaryOf(p);
    const metrics = [bucket(canary, REL_NEW, 12, 20, { decisions: 10 }), bucket("node-x", REL_OLD, 12, 20, { decisions: 10 })];
    // Behaviour passes at 21 s, soak does not yet.
    const early = tick(p, sec(21), { metrics });
    expect(early.state.stages[0]?.last_gates.map((g) => g.status)).toEqual(["waiting", "passed"]);
    expect(early.state.phase).toBe("gate_wait");
    expect(tick(early.state, sec(40), { metrics }).state.current_stage).toBe(1);
  });
});
