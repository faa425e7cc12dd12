/**
 * VAL11 for real (a reduced fleet, three kills) on SQLite and PostgreSQL;
 * and every invariant of the suite shown to fire on a doctored observation.
 */
import { describe, expect, it } from "vitest";
import type { Rollout, RolloutNode } from "../../src/cpapi/index.js";
import { crossPlanViolations, lostAcks, planViolations, regressions } from "../../src/proofs/suites/invariants.js";
import { killSchedule } from "../../src/proofs/suites/val11.js";
import { needs } from "../helpers/needs.js";
import { failures, runSuite } from "../helpers/proof-run.js";

const REL = "rel-00000000000000c2";
const PREV = "rel-00000000000000c3";
const BASE = "rel-00000000000000c1";

function node(id: string, over: Partial<RolloutNode> = {}): RolloutNode {
  return { node_id: id, batch: 0, state: "succeeded", attempts: 1, last_phase: "activated", last_progress_at: null, stuck_since: null, detail: "", late_joiner: false, rollback: null, ...over };
}

/** A plan as the API answers it, with counters computed from its nodes (as the server does). */
function plan(phase: Rollout["phase"], nodes: RolloutNode[], id = "plan-00000000000000c0"): Rollout {
  const count = (s: string): number => nodes.filter((n) => n.state === s).length;
  return {
    plan_id: id, release_id: REL, previous_release_id: PREV, phase, current_stage_id: "all", reason: "", notes: "",
    stages: [{ stage_id: "all", stage_phase: phase === "completed" ? "passed" : "open", cumulative: nodes.length, started_at: null, batch_finished_at: null, passed_at: null, manual_approved: false, gates: [] }],
    nodes,
    counters: {
      members: nodes.length, pending: count("pending"), in_progress: count("in_progress"), succeeded: count("succeeded"), failed: count("failed"), stuck: count("stuck"),
      retried: count("retried"), rolled_back: count("rolled_back"), skipped: count("skipped"), budget_used: 0, budget_allowed: 1, failures_total: 0,
    },
  } as unknown as Rollout;
}

const assigned = (entries: [string, string | null][]): Map<string, string | null> => new Map(entries);

describe("VAL11 (FR-CHOS-01) control-plane chaos", () => {
  it("on SQLite: SIGTERM and SIGKILL mid-rollout, gate_wait across restarts, corrupt artifacts rolled back, no violation", async () => {
    const { report, lines } = await runSuite("val11", { db: "sqlite", seed: 1111, devices: 24, thresholds: { cycles: 3 } });
    expect(failures(report)).toEqual([]);
    expect(report).toMatchObject({ suite: "val11", claim: "FR-CHOS-01", pass: true, seed: 1111, params: { thresholds: { cycles: 3 } } });
    expect(lines.filter((l) => /^cycle \d\/3: SIG(TERM|KILL)/.test(l))).toHaveLength(3);
  }, 150_000);

  needs("postgresql").it("on PostgreSQL: the same chaos, no violation", async () => {
    const { report } = await runSuite("val11", { db: "postgres", seed: 1112, devices: 24, thresholds: { cycles: 3 } });
    expect(failures(report)).toEqual([]);
    expect(report.backend).toBe("postgres");
  }, 150_000);

  it("the kill schedule is the seed's: same seed, same signals and moments; both signals in every schedule of 2 or more", () => {
    expect(killSchedule(5, 6)).toEqual(killSchedule(5, 6));
    expect(killSchedule(5, 6)).not.toEqual(killSchedule(6, 6));
    for (const seed of [1, 2, 3, 4, 5]) {
      const s = killSchedule(seed, 2).map((k) => k.signal).sort();
      expect(s).toEqual(["SIGKILL", "SIGTERM"]);
    }
  });

  it("a consistent picture has no violation", () => {
    const p = plan("active", [node("a"), node("b", { state: "pending", attempts: 0 })]);
    expect(planViolations(p, assigned([["a", REL], ["b", BASE]]), BASE)).toEqual([]);
  });

  it("planViolations fires on: a node listed twice, counters that do not add up, an assignment the state does not imply", () => {
    const twice = plan("active", [node("a"), node("a")]);
    expect(planViolations(twice).join("\n")).toMatch(/listed twice/);
    const p = plan("active", [node("a"), node("b", { state: "pending", attempts: 0 })]);
    (p.counters as Record<string, number>)["succeeded"] = 2;
    expect(planViolations(p).join("\n")).toMatch(/counters.succeeded 2 but 1 nodes succeeded/);
    const q = plan("active", [node("a"), node("b", { state: "pending", attempts: 0 })]);
    expect(planViolations(q, assigned([["a", REL], ["b", REL]]), BASE)).toEqual([expect.stringMatching(/node b: assigned rel-00000000000000c2, but .* means rel-00000000000000c1/)]);
  });

  it("planViolations fires on node states the plan phase forbids", () => {
    expect(planViolations(plan("active", [node("a", { state: "rolled_back", rollback: "pending" })])).join("\n")).toMatch(/rolled back while the plan is not rolling back/);
    expect(planViolations(plan("rolled_back", [node("a", { state: "rolled_back", rollback: "pending" })])).join("\n")).toMatch(/rollback pending in a rolled_back plan/);
    expect(planViolations(plan("completed", [node("a", { state: "in_progress" })])).join("\n")).toMatch(/in_progress in a completed plan/);
    expect(planViolations(plan("rolling_back", [node("a", { state: "rolled_back", rollback: "confirmed" })])).join("\n")).toMatch(/every node back/);
    expect(planViolations(plan("active", [node("a", { state: "pending", attempts: 1 })])).join("\n")).toMatch(/pending after 1 start/);
    expect(planViolations(plan("active", [node("a", { state: "succeeded", rollback: "confirmed" })])).join("\n")).toMatch(/state succeeded with rollback confirmed/);
  });

  it("crossPlanViolations fires on a node in two live plans (not when one of them is finished)", () => {
    const a = plan("active", [node("n1")], "plan-00000000000000a1");
    const b = plan("active", [node("n1")], "plan-00000000000000a2");
    expect(crossPlanViolations([a, b])).toEqual(["node n1 is in two live plans: plan-00000000000000a1 and plan-00000000000000a2"]);
    expect(crossPlanViolations([plan("completed", [node("n1")], "plan-00000000000000a1"), b])).toEqual([]);
  });

  it("regressions fire on what was acknowledged and then lost: a vanished plan, a node gone back, fewer attempts, a terminal plan changed", () => {
    const before = plan("active", [node("a"), node("b", { state: "in_progress" })]);
    expect(regressions(before, plan("active", [node("a"), node("b", { state: "succeeded" })]))).toEqual([]);
    expect(regressions(before, undefined)).toEqual([expect.stringMatching(/missing after/)]);
    expect(regressions(before, plan("active", [node("a", { state: "in_progress" }), node("b", { state: "in_progress" })]))).toEqual([expect.stringMatching(/node a: went from succeeded back to in_progress/)]);
    expect(regressions(before, plan("active", [node("a", { attempts: 0 }), node("b", { state: "in_progress" })]))).toEqual([expect.stringMatching(/attempts went from 1 down to 0/)]);
    expect(regressions(plan("gate_wait", [node("a")]), plan("active", [node("a")]))).toEqual([]);
    expect(regressions(plan("rolling_back", [node("a", { state: "rolled_back", rollback: "pending" })]), plan("active", [node("a")])).join("\n")).toMatch(/phase went from rolling_back back to active/);
    const done = plan("completed", [node("a")]);
    expect(regressions(done, { ...done, reason: "changed" })).toEqual([expect.stringMatching(/terminal\) and changed/)]);
  });

  it("lostAcks fires when the server keeps fewer acks than it acknowledged", () => {
    expect(lostAcks(new Map([["a", 6]]), new Map([["a", 7]]))).toEqual([]);
    expect(lostAcks(new Map([["a", 6]]), new Map([["a", 5]]))).toEqual(["node a: 6 ack(s) acknowledged before the restart, 5 stored after it"]);
  });
});
