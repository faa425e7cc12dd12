import { describe, expect, it } from "vitest";
import { StuckPlan } from "../../cpapi/index.js";
import { inState, plan, report, sec } from "../../../test/helpers/rollout-fixtures.js";
import { cancel, diagnoseStuck, pause, recover, rollback, tick, toStuckPlan } from "./index.js";

describe("diagnoseStuck", () => {
  it("lists a plan with a stuck node: which node, since when, last phase seen", () => {
    const p = tick(plan({ max_concurrency: 1, stuck_timeout_seconds: 30, failure_budget: { max_failures: 2 } }), sec(0)).state;
    const id = inState(p, "in_progress")[0]!;
    const moving = report(p, id, "verify_started", 5).state;
    const stuck = tick(moving, sec(40)).state;
    const d = diagnoseStuck(stuck, sec(41), 3600);
    expect(d).not.toBeNull();
    expect(d).toMatchObject({ plan_id: stuck.plan_id, phase: "active", current_stage_id: "all", stuck_since: sec(5) });
    expect(d?.stuck_nodes[0]).toEqual({ node_id: id, state: "stuck", since: sec(5), last_phase: "verify_started" });
    expect(d?.stuck_reason).toContain(`${id} since 2026-12-05T10:00:05.000Z (stuck, last phase verify_started)`);
    expect(StuckPlan.safeParse(toStuckPlan(d!)).success).toBe(true);
  });

  it("lists in-progress nodes quiet for the query's threshold even before the plan's stuck timeout", () => {
    const p = tick(plan({ max_concurrency: 1, stuck_timeout_seconds: 600 }), sec(0)).state;
    expect(diagnoseStuck(p, sec(59), 60)).toBeNull();
    expect(diagnoseStuck(p, sec(60), 60)?.stuck_nodes).toHaveLength(1);
  });

  it("lists a plan waiting on a gate for the threshold, saying which gate", () => {
    const p0 = tick(plan({ max_concurrency: 4, stages: [{ stage_id: "a", batch: { percent: 100 }, gates: [{ kind: "manual" }] }] }), sec(0)).state;
    let p = p0;
    for (const id of inState(p0, "in_progress")) p = report(p, id, "activated", 1).state;
    p = tick(p, sec(2)).state;
    expect(diagnoseStuck(p, sec(100), 3600)).toBeNull();
    expect(diagnoseStuck(p, sec(3602), 3600)?.stuck_reason).toBe("stage a waiting on manual (waiting for an operator's approval)");
  });

  it("excludes paused and terminal plans (the original's VAL09), includes a rolling back plan whose nodes do not come back", () => {
    const p = tick(plan({ max_concurrency: 1 }), sec(0)).state;
    expect(diagnoseStuck(pause(p, sec(1)).state, sec(99999), 60)).toBeNull();
    expect(diagnoseStuck(cancel(p, sec(1)).state, sec(99999), 60)).toBeNull();
    const rb = rollback(p, sec(1)).state;
    expect(diagnoseStuck(rb, sec(61), 60)?.stuck_nodes.map((n) => n.state)).toEqual(["rolled_back"]);
  });

  it("VAL09 shape: a stuck plan is recovered by retry (→ active) and by rollback (→ rolling_back)", () => {
    const p = tick(plan({ max_concurrency: 1, stuck_timeout_seconds: 30, failure_budget: { max_failures: 2 } }), sec(0)).state;
    const stuck = tick(p, sec(31)).state;
    expect(diagnoseStuck(stuck, sec(32), 3600)).not.toBeNull();
    const retried = recover(stuck, "retry", sec(33)).state;
    expect(retried.phase).toBe("active");
    expect(diagnoseStuck(tick(retried, sec(34)).state, sec(35), 3600)).toBeNull();
    expect(recover(stuck, "rollback", sec(33)).state.phase).toBe("rolling_back");
  });
});
