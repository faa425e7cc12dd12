import { describe, expect, it } from "vitest";
import { Rollout, StageGates } from "../../cpapi/index.js";
import { inState, plan, report, sec } from "../../../test/helpers/rollout-fixtures.js";
import { stageGates, tick, toRollout } from "./index.js";

describe("wire views", () => {
  it("toRollout parses as the cpapi Rollout, with RFC 3339 times and counters", () => {
    const p = tick(plan({ max_concurrency: 2 }), sec(0)).state;
    const q = report(p, inState(p, "in_progress")[0]!, "activated", 3).state;
    const w = toRollout(q);
    expect(Rollout.safeParse(w).success).toBe(true);
    expect(w.created_at).toBe("2026-12-05T10:00:00.000Z");
    expect(w.counters).toEqual({ members: 4, pending: 2, in_progress: 1, succeeded: 1, failed: 0, stuck: 0, retried: 0, rolled_back: 0, skipped: 0, budget_used: 0, budget_allowed: 1, failures_total: 0 });
  });

  it("stageGates parses as the cpapi StageGates and reports an unknown stage", () => {
    const p = plan({ stages: [{ stage_id: "s", batch: { percent: 100 }, gates: [{ kind: "time_soak", seconds: 5 }] }] });
    const g = stageGates(p, "s", sec(1));
    expect(StageGates.safeParse(g).success).toBe(true);
    expect(g).toMatchObject({ stage_phase: "open", all_passed: false, gates: [{ kind: "time_soak", passed: false, detail: "the stage's batch has not finished" }] });
    expect(() => stageGates(p, "x", sec(1))).toThrow(/no stage x/);
  });
});
