import { describe, expect, it } from "vitest";
import { caught } from "../../../test/helpers/caught.js";
import { fleetOf, inState, plan, REL_OLD, report, sec, stateOf } from "../../../test/helpers/rollout-fixtures.js";
import { approveStage, cancel, pause, recover, resume, rollback, tick } from "./index.js";
import type { PlanState , RolloutError} from "./index.js";

const codeOf = (fn: () => unknown): string => (caught(fn) as RolloutError).code;
const running = (): PlanState => tick(plan({ max_concurrency: 2, failure_budget: { max_failures: 1 } }, fleetOf(4)), sec(0)).state;

describe("pause / resume", () => {
  it("paused starts nothing; reports still count; resume goes on", () => {
    const p = running();
    const [a] = inState(p, "in_progress");
    const paused = pause(p, sec(1), "investigating").state;
    expect(paused.phase).toBe("paused");
    expect(paused.reason).toBe("paused: investigating");
    const done = report(paused, a!, "activated", 2).state;
    expect(stateOf(done, a!)).toBe("succeeded");
    expect(tick(done, sec(3)).effects.filter((e) => e.kind === "start")).toEqual([]);
    const resumed = resume(done, sec(4)).state;
    expect(resumed.phase).toBe("active");
    expect(tick(resumed, sec(5)).effects.filter((e) => e.kind === "start")).toHaveLength(1);
  });

  it("pause from gate_wait, resume back to the gate", () => {
    const p0 = tick(plan({ max_concurrency: 4, stages: [{ stage_id: "a", batch: { count: 1 }, gates: [{ kind: "manual" }] }, { stage_id: "b", batch: { percent: 100 } }] }), sec(0)).state;
    const waiting = tick(report(p0, inState(p0, "in_progress")[0]!, "activated", 1).state, sec(2)).state;
    expect(waiting.phase).toBe("gate_wait");
    const back = tick(resume(pause(waiting, sec(3)).state, sec(4)).state, sec(5)).state;
    expect(back.phase).toBe("gate_wait");
  });

  it("illegal: resume when not paused, pause when paused", () => {
    const p = running();
    expect(codeOf(() => resume(p, sec(1)))).toBe("ROLLOUT_ILLEGAL_PHASE");
    expect(codeOf(() => pause(pause(p, sec(1)).state, sec(2)))).toBe("ROLLOUT_ILLEGAL_PHASE");
  });
});

describe("cancel", () => {
  it("is terminal: pending nodes are skipped, started ones keep what they have, nothing changes afterwards", () => {
    const c = cancel(running(), sec(1), "wrong release");
    expect(c.state.phase).toBe("cancelled");
    expect(inState(c.state, "skipped")).toHaveLength(2);
    expect(inState(c.state, "in_progress")).toHaveLength(2);
    for (const fn of [() => pause(c.state, sec(2)), () => resume(c.state, sec(2)), () => cancel(c.state, sec(2)), () => rollback(c.state, sec(2)), () => recover(c.state, "retry", sec(2))]) {
      expect(codeOf(fn)).toBe("ROLLOUT_PLAN_TERMINAL");
    }
  });
  it("illegal while rolling back (finish or skip the rollback instead)", () => {
    expect(codeOf(() => cancel(rollback(running(), sec(1)).state, sec(2)))).toBe("ROLLOUT_ILLEGAL_PHASE");
  });
});

describe("manual rollback", () => {
  it("sends every started node back; a second rollback re-sends to the nodes not yet back", () => {
    const p = running();
    const [a, b] = inState(p, "in_progress");
    const r1 = rollback(p, sec(1), "operator");
    expect(r1.effects.filter((e) => e.kind === "rollback")).toHaveLength(2);
    const oneBack = report(r1.state, a!, "activated", 2, { release: REL_OLD }).state;
    const r2 = rollback(oneBack, sec(3));
    expect(r2.effects).toEqual([{ kind: "rollback", node_id: b!, release_id: REL_OLD }]);
  });
  it("with previous_release_id null is ROLLOUT_NO_PREVIOUS_RELEASE", () => {
    const p = tick(plan({ previous_release_id: null }), sec(0)).state;
    expect(codeOf(() => rollback(p, sec(1)))).toBe("ROLLOUT_NO_PREVIOUS_RELEASE");
  });
  it("a plan where nothing was started rolls back at once", () => {
    expect(rollback(plan(), sec(1)).state.phase).toBe("rolled_back");
  });
});

describe("recover", () => {
  /** Budget 1 of 4 with no previous release: two failures fail the plan. */
  function failedPlan(): PlanState {
    const p = tick(plan({ previous_release_id: null, max_concurrency: 2, failure_budget: { max_failures: 1 } }), sec(0)).state;
    const [a, b] = inState(p, "in_progress");
    const f = report(report(p, a!, "verify_failed", 1).state, b!, "activate_failed", 2).state;
    expect(f.phase).toBe("failed");
    return f;
  }

  it("retry: failed and stuck nodes are retried (started again, attempt 2), the budget counts from zero, the plan is active", () => {
    const r = recover(failedPlan(), "retry", sec(3), "fixed the registry");
    expect(r.state.phase).toBe("active");
    expect(r.state.budget_used).toBe(0);
    expect(inState(r.state, "retried")).toHaveLength(2);
    const t = tick(r.state, sec(4));
    expect(t.effects.filter((e) => e.kind === "start").map((e) => (e as { attempt: number }).attempt)).toEqual([2, 2]);
  });

  it("skip_failed: failed nodes are skipped and the plan goes on without them", () => {
    const r = recover(failedPlan(), "skip_failed", sec(3));
    expect(r.state.phase).toBe("active");
    expect(inState(r.state, "skipped")).toHaveLength(2);
    expect(r.state.nodes.find((n) => n.state === "skipped")?.detail).toMatch(/^skipped by recover/);
    const t = tick(r.state, sec(4));
    expect(t.effects.filter((e) => e.kind === "start")).toHaveLength(2);
  });

  it("rollback: same as a manual rollback", () => {
    const p = running();
    expect(recover(p, "rollback", sec(1)).state.phase).toBe("rolling_back");
  });

  it("rollback on a failed plan with no previous release is ROLLOUT_NO_PREVIOUS_RELEASE", () => {
    expect(codeOf(() => recover(failedPlan(), "rollback", sec(3)))).toBe("ROLLOUT_NO_PREVIOUS_RELEASE");
  });

  it("while rolling back: retry re-sends to nodes not back, skip_failed abandons them and finishes the rollback", () => {
    const p = running();
    const [a] = inState(p, "in_progress");
    const rb = report(rollback(p, sec(1)).state, a!, "activate_failed", 2, { release: REL_OLD }).state;
    expect(recover(rb, "retry", sec(3)).effects.filter((e) => e.kind === "rollback")).toHaveLength(2);
    const skipped = recover(rb, "skip_failed", sec(3)).state;
    expect(skipped.phase).toBe("rolled_back");
    expect(skipped.nodes.filter((n) => n.rollback === "abandoned")).toHaveLength(2);
  });
});

describe("approveStage", () => {
  const gated = (): PlanState => {
    const p0 = tick(plan({ max_concurrency: 4, stages: [{ stage_id: "canary", batch: { count: 1 }, gates: [{ kind: "manual" }] }, { stage_id: "rest", batch: { percent: 100 } }] }), sec(0)).state;
    return tick(report(p0, inState(p0, "in_progress")[0]!, "activated", 1).state, sec(2)).state;
  };

  it("approves the manual gate and promotes the plan at once", () => {
    const r = approveStage(gated(), "canary", sec(3), "looks good");
    expect(r).toMatchObject({ approved: true, promoted: true, message: "stage canary passed" });
    expect(r.state.current_stage).toBe(1);
    expect(r.effects.filter((e) => e.kind === "start")).toHaveLength(3);
  });

  it("approving ahead of time is kept; the stage passes when its batch is done", () => {
    const p0 = tick(plan({ max_concurrency: 4, stages: [{ stage_id: "canary", batch: { count: 1 }, gates: [{ kind: "manual" }] }, { stage_id: "rest", batch: { percent: 100 } }] }), sec(0)).state;
    const early = approveStage(p0, "canary", sec(1));
    expect(early.promoted).toBe(false);
    expect(early.message).toBe("stage canary approved; its batch is not done yet");
    const done = report(early.state, inState(early.state, "in_progress")[0]!, "activated", 2).state;
    expect(tick(done, sec(3)).state.current_stage).toBe(1);
  });

  it("approving a paused plan's stage is kept, and the answer says the plan is paused", () => {
    const r = approveStage(pause(gated(), sec(3)).state, "canary", sec(4));
    expect(r).toMatchObject({ approved: true, promoted: false, message: "stage canary approved; the plan is paused" });
    expect(tick(resume(r.state, sec(5)).state, sec(6)).state.current_stage).toBe(1);
  });

  it("unknown stage, a stage without a manual gate, a terminal plan: typed errors", () => {
    expect(codeOf(() => approveStage(gated(), "nope", sec(3)))).toBe("ROLLOUT_STAGE_NOT_FOUND");
    expect(codeOf(() => approveStage(gated(), "rest", sec(3)))).toBe("ROLLOUT_NO_MANUAL_GATE");
    expect(codeOf(() => approveStage(cancel(gated(), sec(3)).state, "canary", sec(4)))).toBe("ROLLOUT_PLAN_TERMINAL");
  });
});
