// Whole rollouts driven by a small deterministic fleet model: the engine's effects are
// "delivered" to virtual nodes, whose behaviour (install fine, fail verification, hang,
// misbehave after activation) produces the reports, heartbeats and behaviour counters
// the next ticks see. The state goes through JSON between every step, as it would
// through the store (and a SIGKILL).
import { describe, expect, it } from "vitest";
import type { GateSpec } from "../../cpapi/index.js";
import { fleetOf, plan, REL_NEW, REL_OLD, sec } from "../../../test/helpers/rollout-fixtures.js";
import { applyReport, diagnoseStuck, recover, tick } from "./index.js";
import type { Effect, MetricBucket, PlanState } from "./index.js";

type Behaviour = "ok" | "verify_fails" | "hangs" | "misbehaves";

interface VNode {
  id: string;
  behaviour: Behaviour;
  release: string;
  /** A report the node will send at the next step. */
  outbox: { phase: "verify_started" | "activated" | "verify_failed"; release: string }[];
}

class Fleet {
  readonly nodes = new Map<string, VNode>();
  constructor(ids: string[], behaviourOf: (id: string, i: number) => Behaviour) {
    ids.forEach((id, i) => this.nodes.set(id, { id, behaviour: behaviourOf(id, i), release: REL_OLD, outbox: [] }));
  }
  deliver(effects: Effect[]): void {
    for (const e of effects) {
      if (e.kind === "start") {
        const n = this.nodes.get(e.node_id)!;
        if (n.behaviour === "hangs") continue;
        n.outbox.push({ phase: "verify_started", release: e.release_id });
        n.outbox.push(n.behaviour === "verify_fails" ? { phase: "verify_failed", release: e.release_id } : { phase: "activated", release: e.release_id });
      }
      if (e.kind === "rollback") this.nodes.get(e.node_id)!.outbox.push({ phase: "activated", release: e.release_id });
    }
  }
  /** Sends one queued report per node; activations take effect. */
  reports(): { node_id: string; phase: "verify_started" | "activated" | "verify_failed"; release: string }[] {
    const out = [];
    for (const n of this.nodes.values()) {
      const r = n.outbox.shift();
      if (r === undefined) continue;
      if (r.phase === "activated") n.release = r.release;
      out.push({ node_id: n.id, ...r });
    }
    return out;
  }
  metrics(nowMs: number): MetricBucket[] {
    return [...this.nodes.values()].map((n) => {
      const bad = n.release === REL_NEW && n.behaviour === "misbehaves";
      return { node_id: n.id, release_id: n.release, from: nowMs - 10_000, to: nowMs, decisions: 50, denies: bad ? 25 : 1, tool_calls: 50, tool_errors: bad ? 10 : 0, activations_attempted: 0, activations_succeeded: 0 };
    });
  }
  releases(): Record<string, string> {
    return Object.fromEntries([...this.nodes.values()].map((n) => [n.id, n.release]));
  }
}

/** Runs ticks and reports every 10 s until the plan is terminal or `steps` run out; returns the plan. */
function drive(p0: PlanState, fleet: Fleet, steps: number, startSec = 0): { p: PlanState; t: number } {
  let p = p0;
  let t = startSec;
  for (let i = 0; i < steps && !["completed", "rolled_back", "cancelled", "failed"].includes(p.phase); i++) {
    t += 10;
    const ticked = tick(JSON.parse(JSON.stringify(p)) as PlanState, sec(t), { metrics: fleet.metrics(sec(t)), node_releases: fleet.releases() });
    fleet.deliver(ticked.effects);
    p = ticked.state;
    for (const r of fleet.reports()) {
      const res = applyReport(JSON.parse(JSON.stringify(p)) as PlanState, { node_id: r.node_id, release_id: r.release, phase: r.phase, detail: r.phase === "verify_failed" ? "RELEASE_SIGNATURE_INVALID: test" : "", at: sec(t) + 1 }, sec(t) + 1);
      fleet.deliver(res.effects);
      p = res.state;
    }
  }
  return { p, t };
}

const behaviourGate: GateSpec = { kind: "behaviour", metric: "deny_rate", comparison: "ratio", threshold: 2, min_samples: 40, window_seconds: 60 };
const stages = (gates: GateSpec[]) => [
  { stage_id: "canary", batch: { percent: 10 }, gates },
  { stage_id: "half", batch: { percent: 50 }, gates },
  { stage_id: "all", batch: { percent: 100 }, gates: [] },
];
// A fleet of 40, of which the plan targets site "a" (20 nodes); the other 20 are the behaviour baseline.
const fleetNodes = fleetOf(40);

describe("rollout scenarios over a simulated fleet", () => {
  it("a good release goes through canary, half and all, behind soak and behaviour gates", () => {
    const p0 = plan({ target: { selector: { site: "a" } }, max_concurrency: 5, stages: stages([{ kind: "time_soak", seconds: 20 }, behaviourGate]), failure_budget: { max_failures: 2 } }, fleetNodes);
    const fleet = new Fleet(fleetNodes.map((n) => n.node_id), () => "ok");
    const { p } = drive(p0, fleet, 100);
    expect(p.phase).toBe("completed");
    expect(p.nodes.every((n) => n.state === "succeeded")).toBe(true);
    expect([...fleet.nodes.values()].filter((n) => n.release === REL_NEW)).toHaveLength(20);
  });

  it("a release whose agents misbehave is stopped by the behaviour gate after the canary and rolled back, every node confirmed back", () => {
    const p0 = plan({ target: { selector: { site: "a" } }, max_concurrency: 5, stages: stages([behaviourGate]), failure_budget: { max_failures: 2 } }, fleetNodes);
    const fleet = new Fleet(fleetNodes.map((n) => n.node_id), () => "misbehaves");
    const { p } = drive(p0, fleet, 100);
    expect(p.phase).toBe("rolled_back");
    expect(p.reason).toMatch(/^stage canary: behaviour gate failed: policy deny rate 0.5 in the cohort/);
    // Only the canary batch (10 % of 20) was ever started; all of it is back on the old release.
    expect(p.nodes.filter((n) => n.attempts > 0)).toHaveLength(2);
    expect(p.nodes.filter((n) => n.rollback === "confirmed")).toHaveLength(2);
    expect([...fleet.nodes.values()].every((n) => n.release === REL_OLD)).toBe(true);
  });

  it("failures beyond the budget roll the plan back automatically (VAL10 shape: every started node comes back)", () => {
    const p0 = plan({ target: { selector: { site: "a" } }, max_concurrency: 10, stages: stages([]), failure_budget: { max_failures: 1 } }, fleetNodes);
    const fleet = new Fleet(fleetNodes.map((n) => n.node_id), (_id, i) => (i % 6 === 0 ? "verify_fails" : "ok"));
    const { p } = drive(p0, fleet, 100);
    expect(p.phase).toBe("rolled_back");
    expect(p.reason).toMatch(/^failure budget spent/);
    const sent = p.nodes.filter((n) => n.rollback !== null);
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.every((n) => n.rollback === "confirmed")).toBe(true);
  });

  it("hanging nodes make the plan stuck; diagnosed, then recovered by retry once they behave (VAL09 shape)", () => {
    const p0 = plan({ target: { selector: { site: "a" } }, max_concurrency: 4, stuck_timeout_seconds: 30, stages: [{ stage_id: "all", batch: { percent: 100 } }], failure_budget: { max_failures: 5 } }, fleetNodes);
    const fleet = new Fleet(fleetNodes.map((n) => n.node_id), (_id, i) => (i === 0 || i === 2 ? "hangs" : "ok"));
    const first = drive(p0, fleet, 30);
    expect(first.p.phase).toBe("active");
    const d = diagnoseStuck(first.p, sec(first.t), 3600);
    expect(d?.stuck_nodes.map((n) => n.node_id).sort()).toEqual(["node-00", "node-02"]);
    expect(d?.stuck_reason).toMatch(/^2 node\(s\) without progress: /);
    for (const n of fleet.nodes.values()) n.behaviour = "ok";
    const retried = recover(first.p, "retry", sec(first.t + 1)).state;
    const { p } = drive(retried, fleet, 100, first.t + 1);
    expect(p.phase).toBe("completed");
    expect(p.nodes.filter((n) => n.attempts === 2).map((n) => n.node_id).sort()).toEqual(["node-00", "node-02"]);
  });
});
