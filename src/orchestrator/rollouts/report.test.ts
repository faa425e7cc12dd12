import { describe, expect, it } from "vitest";
import { caught } from "../../../test/helpers/caught.js";
import { fleetOf, inState, plan, REL_OLD, REL_OTHER, report, sec, stateOf } from "../../../test/helpers/rollout-fixtures.js";
import { cancel, rollback, tick } from "./index.js";
import type { PlanState , RolloutError} from "./index.js";

const codeOf = (fn: () => unknown): string => (caught(fn) as RolloutError).code;

/** A plan of 4 nodes, concurrency 2, with its first two nodes started at T0. */
function started(): { p: PlanState; a: string; b: string } {
  const p = tick(plan({ failure_budget: { max_failures: 2 } }), sec(0)).state;
  const [a, b] = inState(p, "in_progress");
  return { p, a: a!, b: b! };
}

describe("applyReport: the per-node machine", () => {
  it("in_progress → succeeded on activated", () => {
    const { p, a } = started();
    const r = report(p, a, "activated", 5);
    expect(r.outcome).toBe("applied");
    expect(stateOf(r.state, a)).toBe("succeeded");
    expect(r.effects).toContainEqual({ kind: "node_changed", node_id: a, from: "in_progress", to: "succeeded" });
  });

  it("in_progress → failed on verify_failed and on activate_failed, counting against the budget and keeping the node's detail", () => {
    const { p, a, b } = started();
    const r1 = report(p, a, "verify_failed", 5, { detail: "RELEASE_EXPIRED: too old" });
    const r2 = report(r1.state, b, "activate_failed", 6);
    expect([stateOf(r2.state, a), stateOf(r2.state, b)]).toEqual(["failed", "failed"]);
    expect(r2.state.budget_used).toBe(2);
    expect(r2.state.nodes.find((n) => n.node_id === a)?.detail).toBe("RELEASE_EXPIRED: too old");
  });

  it("progress phases keep the node in_progress and reset its stuck timer", () => {
    const { p, a } = started();
    const r = report(p, a, "verify_started", 50);
    expect(r.outcome).toBe("progress");
    expect(stateOf(r.state, a)).toBe("in_progress");
    expect(r.state.nodes.find((n) => n.node_id === a)?.last_progress_at).toBe(sec(50));
    // 60 s timeout from the last report (50), not from the start (0).
    expect(stateOf(tick(r.state, sec(100)).state, a)).toBe("in_progress");
    expect(stateOf(tick(r.state, sec(110)).state, a)).toBe("stuck");
  });

  it("stuck → in_progress | succeeded | failed when a stuck node reports again", () => {
    const { p, a } = started();
    const stuck = tick(p, sec(61)).state;
    expect(stateOf(stuck, a)).toBe("stuck");
    expect(stateOf(report(stuck, a, "activation_started", 62).state, a)).toBe("in_progress");
    expect(stateOf(report(stuck, a, "activated", 62).state, a)).toBe("succeeded");
    const failed = report(stuck, a, "activate_failed", 62).state;
    expect(stateOf(failed, a)).toBe("failed");
    // One node, one failure: it was counted when it got stuck.
    expect(failed.budget_used).toBe(stuck.budget_used);
  });

  it("failed → succeeded when the node's own retry (next poll) activates the release", () => {
    const { p, a } = started();
    const failed = report(p, a, "verify_failed", 5).state;
    const ok = report(failed, a, "activated", 30);
    expect(stateOf(ok.state, a)).toBe("succeeded");
    expect(ok.state.budget_used).toBe(1);
  });

  it("succeeded → failed is an illegal transition (typed error, state untouched)", () => {
    const { p, a } = started();
    const ok = report(p, a, "activated", 5).state;
    const before = JSON.stringify(ok);
    expect(codeOf(() => report(ok, a, "activate_failed", 9))).toBe("ROLLOUT_ILLEGAL_TRANSITION");
    expect(JSON.stringify(ok)).toBe(before);
  });

  it("a settled node's later progress phases (its poller polling the same release) change nothing", () => {
    const { p, a } = started();
    const ok = report(p, a, "activated", 5).state;
    const r = report(ok, a, "polled", 90);
    expect(r.outcome).toBe("stale");
    expect(r.state).toBe(ok);
  });

  describe("hostile reports", () => {
    it("hostile: a report for a node not in the plan is ROLLOUT_NODE_NOT_IN_PLAN", () => {
      const { p } = started();
      expect(codeOf(() => report(p, "node-99", "activated", 5))).toBe("ROLLOUT_NODE_NOT_IN_PLAN");
    });

    it("hostile: a report for another release is ROLLOUT_REPORT_WRONG_RELEASE (and the previous release before any rollback too)", () => {
      const { p, a } = started();
      expect(codeOf(() => report(p, a, "activated", 5, { release: REL_OTHER }))).toBe("ROLLOUT_REPORT_WRONG_RELEASE");
      expect(codeOf(() => report(p, a, "activated", 5, { release: REL_OLD }))).toBe("ROLLOUT_REPORT_WRONG_RELEASE");
    });

    it("hostile: a duplicate report is a no-op reported as duplicate (never counted twice against the budget)", () => {
      const { p, a } = started();
      const once = report(p, a, "verify_failed", 5);
      const twice = report(once.state, a, "verify_failed", 5);
      expect(twice.outcome).toBe("duplicate");
      expect(twice.effects).toEqual([]);
      expect(twice.state).toBe(once.state);
      expect(twice.state.budget_used).toBe(1);
      // The same outcome resent later (a retried ack) is a duplicate too.
      expect(report(once.state, a, "activate_failed", 8).outcome).toBe("duplicate");
    });

    it("hostile: reports out of order: an older report never rewinds a newer one", () => {
      const { p, a } = started();
      const done = report(p, a, "activated", 20).state;
      const late = report(done, a, "verify_started", 10);
      expect(late.outcome).toBe("stale");
      expect(stateOf(late.state, a)).toBe("succeeded");
      // An older failure arriving after the success does not fail the node either.
      expect(report(done, a, "verify_failed", 15).outcome).toBe("stale");
      expect(report(done, a, "verify_failed", 15).state.budget_used).toBe(0);
    });

    it("hostile: a report from a node the plan has not started yet is an illegal transition", () => {
      const p = tick(plan({ max_concurrency: 1 }, fleetOf(3)), sec(0)).state;
      const waiting = inState(p, "pending")[0]!;
      expect(codeOf(() => report(p, waiting, "activated", 5))).toBe("ROLLOUT_ILLEGAL_TRANSITION");
    });

    it("hostile: any report to a terminal plan is ROLLOUT_PLAN_TERMINAL", () => {
      const { p, a } = started();
      const c = cancel(p, sec(1)).state;
      expect(codeOf(() => report(c, a, "activated", 5))).toBe("ROLLOUT_PLAN_TERMINAL");
    });

    it("hostile: a corrupt stored state is refused before any step (ROLLOUT_STATE_INVALID)", () => {
      const { p, a } = started();
      const bad = { ...p, version: 99 } as unknown as PlanState;
      expect(codeOf(() => report(bad, a, "activated", 5))).toBe("ROLLOUT_STATE_INVALID");
      expect(codeOf(() => tick({ ...p, current_stage: 7 }, sec(1)))).toBe("ROLLOUT_STATE_INVALID");
    });
  });

  describe("while rolling back", () => {
    it("a report for the previous release confirms the node's rollback; when all are back the plan is rolled_back", () => {
      const { p, a, b } = started();
      const rb = rollback(p, sec(2)).state;
      expect(rb.phase).toBe("rolling_back");
      const r1 = report(rb, a, "activated", 3, { release: REL_OLD });
      expect(r1.state.nodes.find((n) => n.node_id === a)?.rollback).toBe("confirmed");
      expect(r1.state.phase).toBe("rolling_back");
      const r2 = report(r1.state, b, "activated", 4, { release: REL_OLD });
      expect(r2.state.phase).toBe("rolled_back");
    });

    it("a failed rollback is recorded and keeps the plan rolling_back", () => {
      const { p, a } = started();
      const rb = rollback(p, sec(2)).state;
      const r = report(rb, a, "activate_failed", 3, { release: REL_OLD });
      expect(r.state.nodes.find((n) => n.node_id === a)?.rollback).toBe("failed");
      expect(r.effects).toEqual([{ kind: "rollback_outcome", node_id: a, outcome: "failed" }]);
      expect(r.state.phase).toBe("rolling_back");
    });

    it("a sent-back node still reporting the new release (in flight when the rollback went out) is superseded: no change, its rollback stays pending", () => {
      const { p, a } = started();
      const rb = rollback(p, sec(2)).state;
      const r = report(rb, a, "activated", 3);
      expect(r.outcome).toBe("superseded");
      expect(r.state).toBe(rb);
      expect(r.state.nodes.find((n) => n.node_id === a)?.rollback).toBe("pending");
      // Any other release is still refused.
      expect(codeOf(() => report(rb, a, "activated", 3, { release: REL_OTHER }))).toBe("ROLLOUT_REPORT_WRONG_RELEASE");
    });
  });
});
