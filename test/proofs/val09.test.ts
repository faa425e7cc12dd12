/**
 * VAL09 for real (a reduced fleet): the built `autonomy serve` on SQLite,
 * virtual devices that hang, the stuck list and both recoveries; and the
 * suite's own judges shown to fail on doctored observations.
 */
import { describe, expect, it } from "vitest";
import type { StuckPlan } from "../../src/cpapi/index.js";
import type { LabDevice } from "../../src/proofs/suites/lab-fleet.js";
import { detectionLatency, fieldProblems } from "../../src/proofs/suites/val09.js";
import { failures, runSuite } from "../helpers/proof-run.js";

const CHECKS = [
  "stuck_plans_listed", "stuck_nodes_diagnosed", "diagnosis_fields", "detection_latency_s", "paused_plan_not_listed", "terminal_plan_not_listed",
  "retry_plan_active", "retry_completes", "retry_devices_on_release", "rollback_plan_rolled_back", "rollback_nodes_confirmed_pct", "recovered_plans_not_listed",
  "plans_consistent", "device_internal_errors",
];

describe("VAL09 (FR-RECV-01) stuck rollouts detected and recovered", () => {
  it("on SQLite: hung devices' plans are listed with a diagnosis (not the paused or terminal one), retry completes, rollback confirms every node", async () => {
    const { report, written } = await runSuite("val09", { db: "sqlite", seed: 909, devices: 16 });
    expect(failures(report)).toEqual([]);
    expect(report).toMatchObject({ suite: "val09", claim: "FR-RECV-01", pass: true, backend: "sqlite", seed: 909, params: { devices: 16 } });
    expect(report.checks.map((c) => c.name)).toEqual(CHECKS);
    expect(written).toEqual(report);
    const latency = report.checks.find((c) => c.name === "detection_latency_s")?.measured as number;
    // Detection is the plan's stuck timeout (5 s) plus a scheduler pass, never instant.
    expect(latency).toBeGreaterThanOrEqual(5);
  }, 120_000);

  const hung = [{ nodeId: "v09-0001" } as LabDevice];
  const entry = (over: Partial<StuckPlan> = {}): StuckPlan => ({
    plan_id: "plan-0123456789abcdef", phase: "active", current_stage_id: "all", stuck_since: "2026-12-06T03:00:00.000Z",
    stuck_reason: "1 node(s) without progress: v09-0001 since 2026-12-06T03:00:00.000Z (stuck, last phase activation_started)",
    stuck_nodes: [{ node_id: "v09-0001", state: "stuck", since: "2026-12-06T03:00:00.000Z", last_phase: "activation_started" }], ...over,
  });

  it("diagnosis_fields fails on a doctored entry: a reason that does not name the node, a stuck_since that is not the node's, a missing plan", () => {
    expect(fieldProblems([entry()], [hung])).toEqual([]);
    expect(fieldProblems([entry({ stuck_reason: "no progress for 5 s" })], [hung])).toEqual(["plan-0123456789abcdef: stuck_reason does not name v09-0001"]);
    expect(fieldProblems([entry({ stuck_since: "2026-12-06T03:00:09.000Z" })], [hung])[0]).toMatch(/stuck_since .* is not the earliest/);
    expect(fieldProblems([entry({ phase: "paused" })], [hung])[0]).toMatch(/phase paused/);
    expect(fieldProblems([undefined], [hung])).toEqual(["plan 0: not listed"]);
  });

  it("detection latency is measured from the node's last report: a plan never listed is infinite (fails any bound)", () => {
    const since = Date.parse("2026-12-06T03:00:00.000Z");
    expect(detectionLatency([{ listedAt: since + 3400, entry: entry() }])).toBeCloseTo(3.4);
    expect(detectionLatency([{ listedAt: since + 3400, entry: entry() }, undefined])).toBe(Number.POSITIVE_INFINITY);
  });
});
