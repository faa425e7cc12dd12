import { describe, expect, it } from "vitest";
import { CreateRolloutRequest } from "../../cpapi/index.js";
import { caught } from "../../../test/helpers/caught.js";
import { fleetOf, known, PLAN_ID, plan, REL_NEW, REL_OLD, REL_OTHER, request, T0 } from "../../../test/helpers/rollout-fixtures.js";
import { createPlan, RolloutError } from "./index.js";
import type { FleetNode } from "./index.js";

function failure(fn: () => unknown): { code: string; field: unknown } {
  const e = caught(fn);
  expect(e).toBeInstanceOf(RolloutError);
  const r = e as RolloutError;
  return { code: r.code, field: r.details.field };
}

describe("createPlan", () => {
  it("freezes the membership from the selector and starts active with stage 0 open and nothing started", () => {
    const p = plan({ target: { selector: { site: "a" } } }, fleetOf(6));
    expect(p.nodes.map((n) => n.node_id).sort()).toEqual(["node-00", "node-02", "node-04"]);
    expect(p.phase).toBe("active");
    expect(p.stages[0]?.phase).toBe("open");
    expect(p.nodes.every((n) => n.state === "pending" && n.attempts === 0)).toBe(true);
  });

  it("orders members deterministically by plan id (same inputs, same order; another plan id, another order)", () => {
    const a = plan({}, fleetOf(20));
    const b = plan({}, [...fleetOf(20)].reverse());
    expect(b.nodes.map((n) => n.node_id)).toEqual(a.nodes.map((n) => n.node_id));
    const c = createPlan({ plan_id: "plan-ffffffffffffffff", request: request(), fleet: fleetOf(20), releaseExists: known, now: T0 });
    expect(c.nodes.map((n) => n.node_id)).not.toEqual(a.nodes.map((n) => n.node_id));
  });

  it("takes an explicit node list as is", () => {
    const p = plan({ target: { nodes: ["node-03", "node-01"] } });
    expect(p.nodes.map((n) => n.node_id).sort()).toEqual(["node-01", "node-03"]);
    expect(p.selector).toBeNull();
  });

  it("computes cumulative batches: percentages round up, counts clamp, the last stage covers everyone", () => {
    const p = plan({ stages: [{ stage_id: "canary", batch: { percent: 1 } }, { stage_id: "half", batch: { count: 5 } }, { stage_id: "rest", batch: { percent: 100 } }] }, fleetOf(10));
    expect(p.stages.map((s) => s.cumulative)).toEqual([1, 5, 10]);
    expect([0, 1, 2].map((b) => p.nodes.filter((n) => n.batch === b).length)).toEqual([1, 4, 5]);
    // Batches follow the member order: the first `cumulative` members are in the first batches.
    expect(p.nodes.map((n) => n.batch)).toEqual([...p.nodes.map((n) => n.batch)].sort((x, y) => x - y));
  });

  it("keeps an empty batch when rounding makes two stages equal", () => {
    const p = plan({ stages: [{ stage_id: "a", batch: { percent: 10 } }, { stage_id: "b", batch: { percent: 20 } }, { stage_id: "c", batch: { percent: 100 } }] }, fleetOf(3));
    expect(p.stages.map((s) => s.cumulative)).toEqual([1, 1, 3]);
  });

  it("computes a fractional budget from the frozen membership, rounded down", () => {
    expect(plan({ failure_budget: { max_failure_fraction: 0.25 } }, fleetOf(10)).budget_allowed).toBe(2);
    expect(plan({ failure_budget: { max_failure_fraction: 0.3 } }, fleetOf(10)).budget_allowed).toBe(3);
  });

  describe("validation errors carry a stable code and name the field", () => {
    it("empty membership", () => {
      expect(failure(() => plan({ target: { selector: { site: "mars" } } }))).toEqual({ code: "ROLLOUT_MEMBERSHIP_EMPTY", field: "target" });
    });
    it("max_concurrency < 1 (the engine checks even what bypassed the schema)", () => {
      const req = { ...request(), max_concurrency: 0 };
      expect(failure(() => createPlan({ plan_id: PLAN_ID, request: req, fleet: fleetOf(3), releaseExists: known, now: T0 }))).toEqual({ code: "ROLLOUT_CONCURRENCY_INVALID", field: "max_concurrency" });
    });
    it("a budget larger than the membership", () => {
      expect(failure(() => plan({ failure_budget: { max_failures: 5 } }, fleetOf(4)))).toEqual({ code: "ROLLOUT_BUDGET_EXCEEDS_MEMBERS", field: "failure_budget.max_failures" });
    });
    it("an unknown release or previous release", () => {
      expect(failure(() => plan({ release_id: REL_OTHER }))).toEqual({ code: "ROLLOUT_RELEASE_UNKNOWN", field: "release_id" });
      expect(failure(() => plan({ previous_release_id: REL_OTHER }))).toEqual({ code: "ROLLOUT_RELEASE_UNKNOWN", field: "previous_release_id" });
    });
    it("a previous release equal to the release", () => {
      expect(failure(() => plan({ previous_release_id: REL_NEW }))).toEqual({ code: "ROLLOUT_PLAN_INVALID", field: "previous_release_id" });
    });
    it("an explicit node that is not enrolled, or listed twice", () => {
      expect(failure(() => plan({ target: { nodes: ["node-00", "node-99"] } }))).toEqual({ code: "ROLLOUT_NODE_UNKNOWN", field: "target.nodes[1]" });
      expect(failure(() => plan({ target: { nodes: ["node-00", "node-00"] } }))).toEqual({ code: "ROLLOUT_PLAN_INVALID", field: "target.nodes[1]" });
    });
    it("batches that shrink or never reach every member", () => {
      expect(failure(() => plan({ stages: [{ stage_id: "a", batch: { count: 3 } }, { stage_id: "b", batch: { count: 2 } }] }))).toEqual({ code: "ROLLOUT_PLAN_INVALID", field: "stages[1].batch" });
      expect(failure(() => plan({ stages: [{ stage_id: "a", batch: { percent: 50 } }] }))).toEqual({ code: "ROLLOUT_PLAN_INVALID", field: "stages[0].batch" });
    });
    it("a stage id used twice", () => {
      expect(failure(() => plan({ stages: [{ stage_id: "a", batch: { count: 1 } }, { stage_id: "a", batch: { percent: 100 } }] }))).toEqual({ code: "ROLLOUT_PLAN_INVALID", field: "stages[1].stage_id" });
    });
  });

  it("never keeps a reference to the caller's fleet or request (state is its own plain data)", () => {
    const fleet: FleetNode[] = fleetOf(3);
    const req = request({ target: { selector: { site: "a" } } });
    const p = createPlan({ plan_id: PLAN_ID, request: req, fleet, releaseExists: known, now: T0 });
    (req.target.selector as Record<string, string>).site = "b";
    expect(p.selector).toEqual({ site: "a" });
    expect(JSON.parse(JSON.stringify(p))).toEqual(p);
  });
});

describe("CreateRolloutRequest (wire)", () => {
  const base = { release_id: REL_NEW, previous_release_id: REL_OLD, target: { nodes: ["n1"] }, max_concurrency: 1, stages: [{ stage_id: "s", batch: { percent: 100 } }], failure_budget: { max_failures: 0 }, stuck_timeout_seconds: 60, late_joiners: "ignore" };
  const paths = (body: unknown): string[] => {
    const r = CreateRolloutRequest.safeParse(body);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.code}`);
  };

  it("accepts a full plan with every gate kind", () => {
    const gates = [{ kind: "time_soak", seconds: 60 }, { kind: "manual" }, { kind: "behaviour", metric: "deny_rate", comparison: "ratio", threshold: 2, min_samples: 100 }];
    expect(paths({ ...base, stages: [{ stage_id: "s", batch: { percent: 100 }, gates }] })).toEqual([]);
  });
  it("rejects an unknown field, naming it", () => {
    expect(paths({ ...base, colour: "red" })).toEqual([": unrecognized_keys"]);
    expect(paths({ ...base, stages: [{ stage_id: "s", batch: { percent: 100 }, gates: [{ kind: "manual", by: "x" }] }] })[0]).toMatch(/^stages\.0\.gates\.0/);
  });
  it("demands exactly one of selector|nodes, percent|count, max_failures|max_failure_fraction", () => {
    expect(paths({ ...base, target: { nodes: ["n1"], selector: {} } })).toEqual(["target.nodes: custom"]);
    expect(paths({ ...base, target: {} })).toEqual(["target: custom"]);
    expect(paths({ ...base, stages: [{ stage_id: "s", batch: { percent: 100, count: 1 } }] })).toEqual(["stages.0.batch.count: custom"]);
    expect(paths({ ...base, failure_budget: {} })).toEqual(["failure_budget: custom"]);
  });
  it("makes late_joiners and previous_release_id explicit (no silent default)", () => {
    const { late_joiners: _l, ...noLate } = base;
    expect(paths(noLate)).toEqual(["late_joiners: invalid_value"]);
    const { previous_release_id: _p, ...noPrev } = base;
    expect(paths(noPrev)).toEqual(["previous_release_id: invalid_type"]);
  });
  it("rejects max_concurrency < 1 at the wire too", () => {
    expect(paths({ ...base, max_concurrency: 0 })).toEqual(["max_concurrency: too_small"]);
  });
});
