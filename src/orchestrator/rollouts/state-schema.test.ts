import { describe, expect, it } from "vitest";
import { caught } from "../../../test/helpers/caught.js";
import { inState, plan, report, sec } from "../../../test/helpers/rollout-fixtures.js";
import { parsePlanState, rollback, RolloutError, tick } from "./index.js";

describe("parsePlanState (reading a stored row back)", () => {
  it("accepts what the engine wrote, through JSON, at every kind of state", () => {
    const p = tick(plan({ max_concurrency: 2, stages: [{ stage_id: "a", batch: { count: 1 }, gates: [{ kind: "manual" }, { kind: "behaviour", metric: "deny_rate", comparison: "delta", threshold: 0.1, min_samples: 5 }] }, { stage_id: "b", batch: { percent: 100 } }] }), sec(0)).state;
    const q = report(p, inState(p, "in_progress")[0]!, "activated", 3).state;
    const r = rollback(tick(q, sec(4)).state, sec(5)).state;
    for (const s of [p, q, r]) expect(parsePlanState(JSON.parse(JSON.stringify(s)))).toEqual(s);
  });

  it("refuses a corrupt row naming every bad path", () => {
    const p = JSON.parse(JSON.stringify(tick(plan(), sec(0)).state)) as Record<string, unknown> & { nodes: Record<string, unknown>[] };
    p.nodes[1]!.state = "exploded";
    p.budget_used = -1;
    p.extra = true;
    const e = caught(() => parsePlanState(p)) as RolloutError;
    expect(e).toBeInstanceOf(RolloutError);
    expect(e.code).toBe("ROLLOUT_STATE_INVALID");
    for (const path of ["nodes[1].state", "budget_used", "extra: unknown field"]) expect(e.message).toContain(path);
  });

  it("refuses a node listed twice (cross-field checks run once the fields are well formed)", () => {
    const p = JSON.parse(JSON.stringify(plan())) as { nodes: { node_id: string }[] };
    p.nodes[2]!.node_id = p.nodes[0]!.node_id;
    expect((caught(() => parsePlanState(p)) as RolloutError).message).toContain(`nodes[2].node_id: ${p.nodes[0]!.node_id} appears twice`);
  });

  it("refuses another version and a stage index out of range", () => {
    const p = JSON.parse(JSON.stringify(plan())) as Record<string, unknown>;
    expect((caught(() => parsePlanState({ ...p, version: 2 })) as RolloutError).message).toContain("version");
    expect((caught(() => parsePlanState({ ...p, current_stage: 3 })) as RolloutError).message).toContain("current_stage: beyond the last stage");
  });
});
