import { describe, expect, it } from "vitest";
import { fleetOf, inState, plan, REL_NEW, REL_OLD, report, sec, stateOf } from "../../../test/helpers/rollout-fixtures.js";
import { tick } from "./index.js";
import type { Effect, PlanState } from "./index.js";

const starts = (effects: Effect[]): string[] => effects.filter((e) => e.kind === "start").map((e) => (e as { node_id: string }).node_id);

/** Every in-progress node reports activated at `s`. */
function succeedAll(p: PlanState, s: number): PlanState {
  let q = p;
  for (const id of inState(q, "in_progress")) q = report(q, id, "activated", s).state;
  return q;
}

describe("tick: the scheduler step", () => {
  it("starts nodes in plan order up to max_concurrency, and more as slots free up", () => {
    const p0 = plan({ max_concurrency: 2 }, fleetOf(5));
    const t1 = tick(p0, sec(0));
    expect(starts(t1.effects)).toEqual(p0.nodes.slice(0, 2).map((n) => n.node_id));
    expect(t1.effects.find((e) => e.kind === "start")).toMatchObject({ release_id: REL_NEW, attempt: 1 });
    expect(starts(tick(t1.state, sec(1)).effects)).toEqual([]);
    const one = report(t1.state, p0.nodes[0]!.node_id, "activated", 2).state;
    expect(starts(tick(one, sec(3)).effects)).toEqual([p0.nodes[2]!.node_id]);
  });

  it("respects batch boundaries: the next batch starts only when the previous one is done", () => {
    const p0 = plan({ max_concurrency: 10, stages: [{ stage_id: "canary", batch: { count: 1 } }, { stage_id: "rest", batch: { percent: 100 } }] }, fleetOf(4));
    const t1 = tick(p0, sec(0));
    expect(starts(t1.effects)).toHaveLength(1);
    const t2 = tick(succeedAll(t1.state, 1), sec(2));
    expect(t2.effects).toContainEqual({ kind: "stage_passed", stage_id: "canary" });
    expect(starts(t2.effects)).toHaveLength(3);
    expect(t2.state.current_stage).toBe(1);
    const t3 = tick(succeedAll(t2.state, 3), sec(4));
    expect(t3.state.phase).toBe("completed");
  });

  it("a failed node within budget does not hold its batch back", () => {
    const p0 = plan({ max_concurrency: 10, failure_budget: { max_failures: 1 }, stages: [{ stage_id: "a", batch: { count: 2 } }, { stage_id: "b", batch: { percent: 100 } }] }, fleetOf(4));
    const t1 = tick(p0, sec(0)).state;
    const [x, y] = inState(t1, "in_progress");
    const t2 = report(report(t1, x!, "verify_failed", 1).state, y!, "activated", 1).state;
    const t3 = tick(t2, sec(2));
    expect(t3.state.phase).toBe("active");
    expect(t3.state.current_stage).toBe(1);
  });

  it("detects a stuck node after stuck_timeout without progress and counts it against the budget", () => {
    const t1 = tick(plan({ max_concurrency: 1, stuck_timeout_seconds: 30, failure_budget: { max_failures: 1 } }), sec(0)).state;
    const id = inState(t1, "in_progress")[0]!;
    expect(stateOf(tick(t1, sec(29)).state, id)).toBe("in_progress");
    const t2 = tick(t1, sec(30)).state;
    expect(stateOf(t2, id)).toBe("stuck");
    expect(t2.budget_used).toBe(1);
    const n = t2.nodes.find((x) => x.node_id === id)!;
    expect(n.stuck_since).toBe(sec(0));
    expect(n.detail).toMatch(/no report for 30 s \(last phase: none\)/);
    // A stuck node keeps its concurrency slot (it may still be activating) and holds its batch open.
    expect(inState(t2, "in_progress")).toHaveLength(0);
    expect(t2.phase).toBe("active");
    expect(t2.stages[0]?.batch_finished_at).toBeNull();
  });

  describe("failure budget", () => {
    it("spent → automatic rollback to previous_release_id, sending back every started node", () => {
      const t1 = tick(plan({ max_concurrency: 3, failure_budget: { max_failures: 1 } }, fleetOf(4)), sec(0)).state;
      const [a, b, c] = inState(t1, "in_progress");
      const ok = report(t1, a!, "activated", 1).state;
      const f1 = report(ok, b!, "verify_failed", 2);
      expect(f1.state.phase).toBe("active");
      const f2 = report(f1.state, c!, "activate_failed", 3);
      expect(f2.state.phase).toBe("rolling_back");
      expect(f2.effects).toContainEqual({ kind: "budget_spent", used: 2, allowed: 1 });
      const sentBack = f2.effects.filter((e) => e.kind === "rollback").map((e) => (e as { node_id: string; release_id: string }).node_id);
      expect(sentBack.sort()).toEqual([a!, b!, c!].sort());
      expect(f2.effects.filter((e) => e.kind === "rollback").every((e) => (e as { release_id: string }).release_id === REL_OLD)).toBe(true);
      // The never-started node is skipped, not sent back.
      expect(inState(f2.state, "skipped")).toHaveLength(1);
    });

    it("spent with no previous release → the plan fails and starts nothing more", () => {
      const t1 = tick(plan({ previous_release_id: null, max_concurrency: 1, failure_budget: { max_failures: 0 } }), sec(0)).state;
      const f = report(t1, inState(t1, "in_progress")[0]!, "verify_failed", 1);
      expect(f.state.phase).toBe("failed");
      expect(f.effects.some((e) => e.kind === "rollback")).toBe(false);
      expect(starts(tick(f.state, sec(5)).effects)).toEqual([]);
    });

    it("a stuck node can spend the budget too", () => {
      const t1 = tick(plan({ max_concurrency: 1, failure_budget: { max_failures: 0 } }), sec(0)).state;
      expect(tick(t1, sec(60)).state.phase).toBe("rolling_back");
    });
  });

  describe("rollback confirmation from heartbeats", () => {
    it("a node whose heartbeat shows the previous release is back; all back → rolled_back", () => {
      const t1 = tick(plan({ max_concurrency: 2, failure_budget: { max_failures: 0 } }), sec(0)).state;
      const [a, b] = inState(t1, "in_progress");
      const rb = report(t1, a!, "verify_failed", 1).state;
      expect(rb.phase).toBe("rolling_back");
      const halfT = tick(rb, sec(2), { node_releases: { [a!]: REL_OLD, [b!]: REL_NEW } });
      expect(halfT.effects).toEqual([{ kind: "rollback_outcome", node_id: a!, outcome: "confirmed" }]);
      const half = halfT.state;
      expect(half.phase).toBe("rolling_back");
      const all = tick(half, sec(3), { node_releases: { [a!]: REL_OLD, [b!]: REL_OLD } });
      expect(all.state.phase).toBe("rolled_back");
      expect(all.effects).toContainEqual(expect.objectContaining({ kind: "phase_changed", from: "rolling_back", to: "rolled_back" }));
    });
  });

  describe("late joiners", () => {
    const stages = [{ stage_id: "a", batch: { count: 1 } }, { stage_id: "b", batch: { percent: 100 } }];

    it("ignore: a node matching the selector after creation is recorded once and never started", () => {
      const p0 = plan({ target: { selector: { site: "a" } }, stages }, fleetOf(4));
      const grown = [...fleetOf(4), { node_id: "node-new", labels: { site: "a" } }, { node_id: "node-other", labels: { site: "b" } }];
      const t1 = tick(p0, sec(0), { fleet: grown });
      expect(t1.effects).toContainEqual({ kind: "late_joiner", node_id: "node-new", action: "ignored", batch: null });
      expect(t1.state.ignored_late_joiners).toEqual(["node-new"]);
      expect(tick(t1.state, sec(1), { fleet: grown }).effects.filter((e) => e.kind === "late_joiner")).toEqual([]);
      expect(t1.state.nodes.some((n) => n.node_id === "node-new")).toBe(false);
    });

    it("include_next_batch: the joiner goes into the next batch not yet started", () => {
      const p0 = plan({ target: { selector: { site: "a" } }, stages, late_joiners: "include_next_batch", max_concurrency: 5 }, fleetOf(4));
      const grown = [...fleetOf(4), { node_id: "node-new", labels: { site: "a" } }];
      const t1 = tick(p0, sec(0), { fleet: grown });
      expect(t1.effects).toContainEqual({ kind: "late_joiner", node_id: "node-new", action: "included", batch: 1 });
      expect(t1.state.stages.map((s) => s.cumulative)).toEqual([1, 3]);
      expect(starts(t1.effects)).not.toContain("node-new");
      const t2 = tick(succeedAll(t1.state, 1), sec(2), { fleet: grown });
      expect(starts(t2.effects)).toContain("node-new");
      expect(t2.state.nodes.find((n) => n.node_id === "node-new")?.late_joiner).toBe(true);
    });

    it("an explicit node list has no late joiners", () => {
      const p0 = plan({ target: { nodes: ["node-00"] }, late_joiners: "include_next_batch" });
      expect(tick(p0, sec(0), { fleet: fleetOf(8) }).effects.filter((e) => e.kind === "late_joiner")).toEqual([]);
    });
  });

  it("a terminal plan comes back unchanged with no effects", () => {
    const t1 = tick(plan({ max_concurrency: 4 }), sec(0)).state;
    const done = tick(succeedAll(t1, 1), sec(2)).state;
    expect(done.phase).toBe("completed");
    const again = tick(done, sec(1000), { fleet: [...fleetOf(4), { node_id: "late", labels: {} }] });
    expect(again.effects).toEqual([]);
    expect(again.state).toEqual(done);
  });
});

describe("bug: an activated ack lost to a control-plane kill left the node stuck forever (VAL11)", () => {
  it("a started node whose heartbeat shows the plan's release is succeeded, in_progress or stuck, and its batch goes on", () => {
    const p0 = plan({ max_concurrency: 1, failure_budget: { max_failures: 1 }, stuck_timeout_seconds: 10 }, fleetOf(2));
    const t1 = tick(p0, sec(0));
    const [a, b] = [p0.nodes[0]!.node_id, p0.nodes[1]!.node_id];
    // a acked up to activation_started, then the server died; its activated ack never arrived.
    const started = report(t1.state, a, "activation_started", 1).state;
    // Before: nothing but its heartbeat could tell, and nothing read it (stuck after the timeout, slot held).
    const stuck = tick(started, sec(20), { node_releases: { [a]: REL_OLD, [b]: REL_OLD } });
    expect(stateOf(stuck.state, a)).toBe("stuck");
    const healed = tick(stuck.state, sec(21), { node_releases: { [a]: REL_NEW, [b]: REL_OLD } });
    expect(stateOf(healed.state, a)).toBe("succeeded");
    expect(healed.state.nodes[0]!.detail).toMatch(/confirmed by the node's heartbeat/);
    expect(healed.state.budget_used).toBe(1); // counted when it got stuck, not refunded
    expect(starts(healed.effects)).toEqual([b]);
    // in_progress (not yet stuck) is confirmed the same way, and a late activated ack is a duplicate.
    const quick = tick(started, sec(2), { node_releases: { [a]: REL_NEW } });
    expect(stateOf(quick.state, a)).toBe("succeeded");
    expect(report(quick.state, a, "activated", 3).outcome).toBe("duplicate");
  });

  it("a heartbeat on another release changes nothing", () => {
    const t1 = tick(plan({}, fleetOf(2)), sec(0));
    const a = t1.state.nodes[0]!.node_id;
    expect(stateOf(tick(t1.state, sec(1), { node_releases: { [a]: REL_OLD } }).state, a)).toBe("in_progress");
  });
});
