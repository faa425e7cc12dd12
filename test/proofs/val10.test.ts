/**
 * VAL10 for real (a reduced fleet) on PostgreSQL: 12 plans rolled back for
 * four reasons and 5 retried; and the tally shown to fail on doctored plans.
 */
import { describe, expect, it } from "vitest";
import type { Rollout, RolloutNode } from "../../src/cpapi/index.js";
import { sizing, tally } from "../../src/proofs/suites/val10.js";
import { needs } from "../helpers/needs.js";
import { failures, runSuite } from "../helpers/proof-run.js";

const PREV = "rel-00000000000000b3";

function node(id: string, over: Partial<RolloutNode> = {}): RolloutNode {
  return { node_id: id, batch: 0, state: "rolled_back", attempts: 1, last_phase: "activated", last_progress_at: null, stuck_since: null, detail: "", late_joiner: false, rollback: "confirmed", ...over };
}

function plan(reason: string, nodes: RolloutNode[], phase: Rollout["phase"] = "rolled_back"): Rollout {
  return { plan_id: "plan-00000000000000aa", previous_release_id: PREV, phase, reason, nodes } as unknown as Rollout;
}

describe("VAL10 (FR-RECV-02) rollback reliability", () => {
  needs("postgresql").it("on PostgreSQL: ≥ 99 % of the nodes sent back are confirmed back over 12 plans (budget, behaviour, manual, recover), retry 5/5", async () => {
    const { report } = await runSuite("val10", { db: "postgres", seed: 1010, devices: 68 });
    expect(failures(report)).toEqual([]);
    expect(report).toMatchObject({ suite: "val10", claim: "FR-RECV-02", pass: true, backend: "postgres" });
    expect(report.environment.pg_version).toMatch(/^\d+/);
    const by = new Map(report.checks.map((c) => [c.name, c]));
    expect(by.get("plans_rolled_back")?.detail).toBe("budget 3, behaviour 3, manual 3, recover 3");
    expect(by.get("retry_success")?.measured).toBe("5/5");
  }, 150_000);

  it("the tally counts a node only when the server confirmed it AND the device runs the rollback release", () => {
    const ok = tally([{ kind: "manual", plan: plan("manual rollback: x", [node("a"), node("b")]) }], () => PREV);
    expect(ok).toEqual({ sentBack: 2, confirmed: 2, plansRollingBack: 1, plansRolledBack: 1, wrongCause: [] });
    // The server says confirmed, but the device is not on the rollback release: not counted.
    expect(tally([{ kind: "manual", plan: plan("manual rollback: x", [node("a"), node("b")]) }], (id) => (id === "a" ? PREV : "rel-00000000000000b2")).confirmed).toBe(1);
    // A rollback the server saw fail, and a plan stuck rolling back.
    const stuck = tally([{ kind: "budget", plan: plan("failure budget spent: 2 failure(s), 1 allowed; automatic rollback", [node("a", { rollback: "failed" }), node("b")], "rolling_back") }], () => PREV);
    expect(stuck).toMatchObject({ sentBack: 2, confirmed: 1, plansRollingBack: 1, plansRolledBack: 0 });
  });

  it("a plan rolled back for another reason than its kind is named", () => {
    const t = tally([{ kind: "behaviour", plan: plan("manual rollback: operator", [node("a")]) }], () => PREV);
    expect(t.wrongCause).toHaveLength(1);
    expect(t.wrongCause[0]).toContain("(behaviour)");
  });

  it("sizing: the default is 17 plans of 8 devices; --devices shrinks the groups, never below 4", () => {
    expect(sizing(undefined)).toEqual({ perKind: 3, group: 8 });
    expect(sizing(68)).toEqual({ perKind: 3, group: 4 });
    expect(sizing(10)).toEqual({ perKind: 3, group: 4 });
  });
});
