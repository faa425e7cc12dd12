// Property tests over random plans and random sequences of reports, ticks and commands.
// fast-check prints the seed and the shrunk counterexample of a failure; replay one with
// FC_SEED=<seed> npx vitest run src/orchestrator/rollouts/rollouts.property.test.ts
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LIFECYCLE_PHASES, NODE_STATES, PLAN_PHASES, RECOVER_STRATEGIES } from "../../cpapi/index.js";
import type { CreateRolloutInput, LifecyclePhase, NodeState, PlanPhase } from "../../cpapi/index.js";
import { fleetOf, plan, REL_NEW, REL_OLD, REL_OTHER, T0 } from "../../../test/helpers/rollout-fixtures.js";
import { moveNode, setPhase } from "./core.js";
import { applyReport, approveStage, cancel, isTerminal, parsePlanState, NODE_TRANSITIONS, PLAN_TRANSITIONS, pause, recover, resume, rollback, ROLLOUT_ERROR_CODES, RolloutError, tick } from "./index.js";
import type { Effect, MetricBucket, PlanState } from "./index.js";

const seed = process.env.FC_SEED !== undefined ? Number(process.env.FC_SEED) : undefined;
const params = { numRuns: 200, ...(seed !== undefined ? { seed } : {}) };

type Op =
  | { op: "tick"; dt: number; metrics: boolean; fleetGrows: boolean; heartbeats: boolean }
  | { op: "report"; dt: number; node: number; inflight: boolean; phase: LifecyclePhase; release: 0 | 1 | 2; skew: number }
  | { op: "pause" | "resume" | "cancel" | "rollback"; dt: number }
  | { op: "recover"; dt: number; strategy: (typeof RECOVER_STRATEGIES)[number] }
  | { op: "approve"; dt: number; stage: number };

const gateArb = fc.oneof(
  fc.record({ kind: fc.constant("time_soak" as const), seconds: fc.integer({ min: 0, max: 120 }) }),
  fc.constant({ kind: "manual" as const }),
  fc.record({
    kind: fc.constant("behaviour" as const),
    metric: fc.constantFrom("deny_rate" as const, "tool_error_rate" as const, "activation_success" as const),
    comparison: fc.constantFrom("ratio" as const, "delta" as const),
    threshold: fc.constantFrom(0, 0.1, 1, 2),
    min_samples: fc.integer({ min: 1, max: 50 }),
    window_seconds: fc.integer({ min: 30, max: 600 }),
  }),
);

const planArb = fc
  .record({
    members: fc.integer({ min: 1, max: 16 }),
    max_concurrency: fc.integer({ min: 1, max: 5 }),
    cuts: fc.uniqueArray(fc.integer({ min: 1, max: 99 }), { maxLength: 3 }),
    gates: fc.array(fc.array(gateArb, { maxLength: 2 }), { minLength: 4, maxLength: 4 }),
    budget: fc.integer({ min: 0, max: 16 }),
    previous: fc.boolean(),
    late: fc.constantFrom("ignore" as const, "include_next_batch" as const),
    stuck: fc.integer({ min: 10, max: 300 }),
  })
  .map((r): { over: Partial<CreateRolloutInput>; members: number } => {
    const cuts = [...r.cuts].sort((a, b) => a - b);
    const stages = [...cuts, 100].map((percent, i) => ({ stage_id: `s${i}`, batch: { percent }, gates: r.gates[i] ?? [] }));
    return {
      members: r.members,
      over: {
        max_concurrency: r.max_concurrency,
        stages,
        failure_budget: { max_failures: Math.min(r.budget, r.members) },
        previous_release_id: r.previous ? REL_OLD : null,
        late_joiners: r.late,
        stuck_timeout_seconds: r.stuck,
      },
    };
  });

const dt = fc.integer({ min: 0, max: 90 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 16, arbitrary: fc.record({ op: fc.constant("tick" as const), dt, metrics: fc.boolean(), fleetGrows: fc.boolean(), heartbeats: fc.boolean() }) },
  {
    weight: 28,
    arbitrary: fc.record({
      op: fc.constant("report" as const),
      dt: fc.integer({ min: 0, max: 20 }),
      node: fc.integer({ min: 0, max: 19 }),
      // Mostly a node the plan started (so runs get far), sometimes any node (hostile and confused reports).
      inflight: fc.constantFrom(true, true, true, false),
      phase: fc.oneof({ weight: 5, arbitrary: fc.constant("activated" as const) }, { weight: 3, arbitrary: fc.constantFrom(...LIFECYCLE_PHASES) }),
      release: fc.constantFrom(0 as const, 0 as const, 0 as const, 0 as const, 1 as const, 2 as const),
      skew: fc.integer({ min: -30, max: 5 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom("pause" as const, "resume" as const), dt }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("rollback" as const), dt }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("cancel" as const), dt }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("recover" as const), dt, strategy: fc.constantFrom(...RECOVER_STRATEGIES) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant("approve" as const), dt, stage: fc.integer({ min: 0, max: 4 }) }) },
);

const RELEASES = [REL_NEW, REL_OLD, REL_OTHER] as const;

function metricsFor(p: PlanState, now: number): MetricBucket[] {
  // Deterministic, derived from the state: the cohort misbehaves when the plan has an odd number of members.
  const bad = p.nodes.length % 2;
  return p.nodes.map((n, i) => ({
    node_id: n.node_id,
    release_id: n.state === "succeeded" ? REL_NEW : REL_OLD,
    from: now - 20_000,
    to: now,
    decisions: 20,
    denies: n.state === "succeeded" ? 10 * bad : i % 2,
    tool_calls: 20,
    tool_errors: 1,
    activations_attempted: 2,
    activations_succeeded: 2 - bad,
  }));
}

/** One step; returns the new state, its effects, or the typed error it threw. */
function step(p: PlanState, o: Op, now: number, fleetSize: number): { state: PlanState; effects: Effect[]; error?: string } {
  try {
    switch (o.op) {
      case "tick": {
        const fleet = fleetOf(fleetSize + (o.fleetGrows ? 2 : 0));
        const node_releases = o.heartbeats ? Object.fromEntries(p.nodes.map((n) => [n.node_id, REL_OLD])) : undefined;
        return tick(p, now, { ...(o.metrics ? { metrics: metricsFor(p, now) } : {}), fleet, ...(node_releases ? { node_releases } : {}) });
      }
      case "report": {
        const moving = p.nodes.filter((n) => n.state === "in_progress" || n.state === "stuck" || n.rollback === "pending");
        const pool = o.inflight && moving.length > 0 ? moving : p.nodes;
        const node_id = pool[o.node % pool.length]?.node_id ?? "node-99";
        const id = o.node >= 19 ? "node-stranger" : node_id;
        // A node sent back reports on the previous release (unless the draw says otherwise).
        const back = p.nodes.find((n) => n.node_id === id)?.rollback != null && o.release === 0 ? 1 : o.release;
        return applyReport(p, { node_id: id, release_id: RELEASES[back], phase: o.phase, detail: "", at: now + o.skew * 1000 }, now);
      }
      case "pause":
        return pause(p, now);
      case "resume":
        return resume(p, now);
      case "cancel":
        return cancel(p, now);
      case "rollback":
        return rollback(p, now);
      case "recover":
        return recover(p, o.strategy, now);
      case "approve":
        return approveStage(p, `s${o.stage}`, now, "", { metrics: metricsFor(p, now) });
    }
  } catch (e) {
    if (!(e instanceof RolloutError)) throw e;
    expect(ROLLOUT_ERROR_CODES).toContain(e.code);
    return { state: p, effects: [], error: e.code };
  }
}

interface Run {
  states: PlanState[];
  effects: Effect[][];
  errors: (string | undefined)[];
}

function run(p0: PlanState, ops: readonly Op[], fleetSize: number, roundTrip: boolean): Run {
  let p = p0;
  let now = T0;
  const out: Run = { states: [], effects: [], errors: [] };
  for (const o of ops) {
    now += o.dt * 1000;
    const r = step(roundTrip ? (JSON.parse(JSON.stringify(p)) as PlanState) : p, o, now, fleetSize);
    out.states.push(r.state);
    out.effects.push(r.effects);
    out.errors.push(r.error);
    p = r.state;
  }
  return out;
}

const scenario = fc.tuple(planArb, fc.array(opArb, { minLength: 1, maxLength: 80, size: "max" }));

function build(members: number, over: Partial<CreateRolloutInput>): PlanState {
  return plan({ ...over, target: { selector: {} } }, fleetOf(members));
}

describe("rollout engine properties (random plans, random report sequences)", () => {
  it("never more than max_concurrency nodes in flight (in_progress or stuck holding a slot)", () => {
    fc.assert(
      fc.property(scenario, ([{ members, over }, ops]) => {
        const r = run(build(members, over), ops, members, false);
        for (const s of r.states) expect(s.nodes.filter((n) => n.state === "in_progress" || n.state === "stuck").length).toBeLessThanOrEqual(s.max_concurrency);
      }),
      params,
    );
  });

  it("no node in two states: ids are unique, every node has one known state, counts add up", () => {
    fc.assert(
      fc.property(scenario, ([{ members, over }, ops]) => {
        const r = run(build(members, over), ops, members, false);
        for (const s of r.states) {
          expect(new Set(s.nodes.map((n) => n.node_id)).size).toBe(s.nodes.length);
          for (const n of s.nodes) expect(NODE_STATES).toContain(n.state);
          expect(PLAN_PHASES).toContain(s.phase);
        }
      }),
      params,
    );
  });

  it("every node and phase change the engine reports is a legal transition of its table", () => {
    fc.assert(
      fc.property(scenario, ([{ members, over }, ops]) => {
        const r = run(build(members, over), ops, members, false);
        for (const effects of r.effects) {
          for (const e of effects) {
            if (e.kind === "node_changed") expect(NODE_TRANSITIONS[e.from]).toContain(e.to);
            if (e.kind === "phase_changed") expect(PLAN_TRANSITIONS[e.from]).toContain(e.to);
          }
        }
      }),
      params,
    );
  });

  it("a terminal plan never changes (every later step refuses or returns it unchanged)", () => {
    fc.assert(
      fc.property(scenario, ([{ members, over }, ops]) => {
        const p0 = build(members, over);
        const r = run(p0, ops, members, false);
        let terminal: string | undefined;
        r.states.forEach((s, i) => {
          if (terminal !== undefined) {
            expect(JSON.stringify(s)).toBe(terminal);
            expect(r.effects[i]).toEqual([]);
            if (r.errors[i] !== undefined) expect(r.errors[i]).toBe("ROLLOUT_PLAN_TERMINAL");
          }
          if (terminal === undefined && isTerminal(s.phase)) terminal = JSON.stringify(s);
        });
      }),
      params,
    );
  });

  it("the failure budget is never exceeded without a rollback being issued (or, with no previous release, the plan failing)", () => {
    fc.assert(
      fc.property(scenario, ([{ members, over }, ops]) => {
        const r = run(build(members, over), ops, members, false);
        let rollbackIssued = false;
        r.states.forEach((s, i) => {
          const effects = r.effects[i] ?? [];
          if (effects.some((e) => e.kind === "rollback" || (e.kind === "phase_changed" && e.to === "rolled_back"))) rollbackIssued = true;
          if (s.budget_used <= s.budget_allowed) return;
          if (s.previous_release_id === null) expect(["failed", "cancelled"]).toContain(s.phase);
          else {
            expect(["rolling_back", "rolled_back", "cancelled"]).toContain(s.phase);
            if (s.phase !== "cancelled") expect(rollbackIssued).toBe(true);
          }
        });
      }),
      params,
    );
  });

  it("rollback effects always name the previous release; start effects always the plan's release", () => {
    fc.assert(
      fc.property(scenario, ([{ members, over }, ops]) => {
        const p0 = build(members, over);
        const r = run(p0, ops, members, false);
        for (const e of r.effects.flat()) {
          if (e.kind === "rollback") expect(e.release_id).toBe(p0.previous_release_id);
          if (e.kind === "start") expect(e.release_id).toBe(p0.release_id);
        }
      }),
      params,
    );
  });

  it("is deterministic: the same inputs give the same states and effects, also through a JSON round trip of the state at every step (a SIGKILL and a reload)", () => {
    fc.assert(
      fc.property(scenario, ([{ members, over }, ops]) => {
        const a = run(build(members, over), ops, members, false);
        const b = run(build(members, over), ops, members, false);
        const c = run(build(members, over), ops, members, true);
        expect(JSON.stringify(b)).toBe(JSON.stringify(a));
        expect(JSON.stringify(c)).toBe(JSON.stringify(a));
        // Every state the engine writes reads back through the store's strict parser unchanged.
        for (const s of a.states) expect(parsePlanState(JSON.parse(JSON.stringify(s)))).toEqual(s);
      }),
      { ...params, numRuns: 100 },
    );
  });

  it("every illegal node transition throws ROLLOUT_ILLEGAL_TRANSITION and every illegal phase change ROLLOUT_ILLEGAL_PHASE", () => {
    const pairs = <T extends string>(all: readonly T[]) => fc.tuple(fc.constantFrom(...all), fc.constantFrom(...all));
    fc.assert(
      fc.property(pairs<NodeState>(NODE_STATES), ([from, to]) => {
        const p = plan();
        const n = p.nodes[0]!;
        n.state = from;
        const legal = NODE_TRANSITIONS[from].includes(to);
        let code: string | undefined;
        try {
          moveNode(p, n, to, T0, []);
        } catch (e) {
          code = (e as RolloutError).code;
        }
        expect(code).toBe(legal ? undefined : "ROLLOUT_ILLEGAL_TRANSITION");
      }),
      params,
    );
    fc.assert(
      fc.property(pairs<PlanPhase>(PLAN_PHASES), ([from, to]) => {
        const p = plan();
        p.phase = from;
        const legal = from === to || PLAN_TRANSITIONS[from].includes(to);
        let code: string | undefined;
        try {
          setPhase(p, to, "test", T0, []);
        } catch (e) {
          code = (e as RolloutError).code;
        }
        expect(code).toBe(legal ? undefined : "ROLLOUT_ILLEGAL_PHASE");
      }),
      params,
    );
  });

  it("the caller's state is never mutated, even by a step that throws", () => {
    fc.assert(
      fc.property(scenario, ([{ members, over }, ops]) => {
        let p = build(members, over);
        let now = T0;
        for (const o of ops) {
          now += o.dt * 1000;
          const before = JSON.stringify(p);
          const r = step(p, o, now, members);
          expect(JSON.stringify(p)).toBe(before);
          p = r.state;
        }
      }),
      { ...params, numRuns: 100 },
    );
  });
});
