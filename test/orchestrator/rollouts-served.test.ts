/**
 * Rollouts served, on SQLite and PostgreSQL, through the HTTP routes with
 * virtual nodes polling and acking: the store, the assignments behind GET
 * /v1/releases/latest, the ack hook, the scheduler's ticks (driven by hand
 * here, with a manual clock), commands, and the hostile cases.
 */
import { afterEach, expect, it } from "vitest";
import type { CreateRolloutInput, Rollout } from "../../src/cpapi/index.js";
import { bearer, openTestCp } from "../helpers/cp-app.js";
import type { TestCp } from "../helpers/cp-app.js";
import { enrollNode, expectProblem, putRelease } from "../helpers/cp-fleet.js";
import { SimNode } from "../helpers/cp-rollout-nodes.js";
import type { Via } from "../helpers/cp-rollout-nodes.js";
import { describeDialects } from "../helpers/databases.js";

const REL_OLD = "rel-00000000000000a0";
const REL_NEW = "rel-00000000000000a1";
/** The rollback target: REL_OLD's content re-signed at sequence 3, above REL_NEW, published standby (docs/rollouts.md). */
const REL_BACK = "rel-00000000000000a2";

function planBody(over: Partial<CreateRolloutInput> = {}): CreateRolloutInput {
  return {
    release_id: REL_NEW,
    previous_release_id: REL_BACK,
    target: { selector: { site: "a" } },
    max_concurrency: 2,
    stages: [
      { stage_id: "canary", batch: { count: 1 } },
      { stage_id: "all", batch: { percent: 100 } },
    ],
    failure_budget: { max_failures: 1 },
    stuck_timeout_seconds: 60,
    late_joiners: "ignore",
    ...over,
  };
}

describeDialects("rollouts served", (db) => {
  let cp: TestCp | undefined;
  afterEach(async () => {
    await cp?.close();
    cp = undefined;
  });

  /** A control plane with REL_OLD (seq 1), REL_NEW (seq 2, the channel's latest), REL_BACK (seq 3, standby) and `n` nodes on REL_OLD. */
  async function fleet(n: number): Promise<{ c: TestCp; nodes: SimNode[]; via: Via }> {
    const c = await openTestCp({ location: await db.fresh() });
    cp = c;
    await putRelease(c.store, REL_OLD, 1);
    await putRelease(c.store, REL_NEW, 2);
    await putRelease(c.store, REL_BACK, 3, { standby: true });
    const via: Via = async (r) => {
      const res = await c.app.inject({ method: r.method, url: r.url, headers: { ...bearer(r.token), ...(r.headers ?? {}) }, ...(r.body !== undefined ? { payload: r.body as object } : {}) });
      return { status: res.statusCode, etag: res.headers.etag, json: res.body ? (JSON.parse(res.body) as unknown) : undefined };
    };
    const nodes: SimNode[] = [];
    for (let i = 0; i < n; i++) {
      const id = `edge-${i}`;
      const node = new SimNode(id, await enrollNode(c, id, { site: "a" }), via, () => c.clock.now(), REL_OLD);
      await node.heartbeat();
      nodes.push(node);
    }
    return { c, nodes, via };
  }

  const op = async (c: TestCp, method: "GET" | "POST", url: string, payload?: object, token = c.owner) =>
    c.app.inject({ method, url, headers: bearer(token), ...(payload !== undefined ? { payload } : {}) });

  async function create(c: TestCp, over: Partial<CreateRolloutInput> = {}): Promise<Rollout> {
    const r = await op(c, "POST", "/v1/rollouts", planBody(over));
    expect(r.statusCode, r.body).toBe(201);
    return r.json<Rollout>();
  }

  const get = async (c: TestCp, id: string): Promise<Rollout> => (await op(c, "GET", `/v1/rollouts/${id}`)).json<Rollout>();

  async function assignments(c: TestCp): Promise<Record<string, string>> {
    const rows = await c.store.db.selectFrom("node_assignments").select(["node_id", "release_id"]).execute();
    return Object.fromEntries(rows.map((r) => [r.node_id, r.release_id]));
  }

  /** A tick, then every node polls once; checks the concurrency bound after each tick. */
  async function round(c: TestCp, nodes: SimNode[], planId: string, max: number): Promise<Rollout> {
    c.clock.advance(1000);
    await c.app.rollouts.scheduler.tickAll();
    const p = await get(c, planId);
    expect(p.counters.in_progress + p.counters.stuck, `concurrency after a tick: ${JSON.stringify(p.counters)}`).toBeLessThanOrEqual(max);
    // The same bound read from the assignments: nodes sent to the new release that have not settled yet.
    const assigned = await assignments(c);
    const inFlight = p.nodes.filter((n) => assigned[n.node_id] === p.release_id && (n.state === "in_progress" || n.state === "stuck"));
    expect(inFlight.length).toBeLessThanOrEqual(max);
    expect(p.nodes.filter((n) => n.state === "pending").every((n) => assigned[n.node_id] !== p.release_id)).toBe(true);
    for (const n of nodes) await n.step();
    return get(c, planId);
  }

  it("a canary that succeeds opens the next batch; assignments move one batch at a time, never more than max_concurrency in flight; the plan completes", async () => {
    const { c, nodes } = await fleet(5);
    const plan = await create(c);
    expect(plan.counters.members).toBe(5);
    // Pinned at creation: every member keeps REL_OLD, though the channel's latest is REL_NEW.
    expect(Object.values(await assignments(c))).toEqual(Array(5).fill(REL_OLD));
    for (const n of nodes) expect(await n.step()).toBe(REL_OLD);
    // The operator still sees the channel's latest: REL_NEW, not the standby REL_BACK above it.
    expect((await op(c, "GET", "/v1/releases/latest?channel=stable")).json<{ release_id: string }>().release_id).toBe(REL_NEW);
    let p = await round(c, nodes, plan.plan_id, 2);
    expect(Object.values(await assignments(c)).filter((r) => r === REL_NEW)).toHaveLength(1);
    expect(p.counters.succeeded).toBe(1);
    for (let i = 0; i < 6 && p.phase !== "completed"; i++) p = await round(c, nodes, plan.plan_id, 2);
    expect(p.phase, p.reason).toBe("completed");
    expect(p.counters.succeeded).toBe(5);
    expect(Object.values(await assignments(c))).toEqual(Array(5).fill(REL_NEW));
    expect(nodes.map((n) => n.running)).toEqual(Array(5).fill(REL_NEW));
  });

  it("failures past the budget roll the plan back by itself: assignments move to the rollback target (standby, above the plan's release) and the nodes go there", async () => {
    const { c, nodes } = await fleet(4);
    for (const n of nodes) n.mode = "fail";
    nodes[0]!.mode = "ok";
    const plan = await create(c, { stages: [{ stage_id: "all", batch: { percent: 100 } }], failure_budget: { max_failures: 1 } });
    let p = plan;
    for (let i = 0; i < 6 && p.phase !== "rolling_back" && p.phase !== "rolled_back"; i++) p = await round(c, nodes, plan.plan_id, 2);
    expect(["rolling_back", "rolled_back"]).toContain(p.phase);
    expect(p.reason).toMatch(/failure budget spent/);
    // Every node the plan started is sent to the rollback target; the ones never started stay pinned where they were.
    const sentBack = p.nodes.filter((n) => n.state === "rolled_back").map((n) => n.node_id);
    expect(sentBack.length).toBeGreaterThanOrEqual(2);
    const assigned = await assignments(c);
    for (const n of nodes) expect(assigned[n.nodeId], n.nodeId).toBe(sentBack.includes(n.nodeId) ? REL_BACK : REL_OLD);
    // The failures were the candidate's own: repaired and restarted (polling afresh), the failing nodes take the
    // rollback target (the old content at a higher sequence), including one that already tried it in mode fail.
    for (const n of nodes) {
      if (n.mode === "fail") n.etag = undefined;
      n.mode = "ok";
    }
    for (let i = 0; i < 3 && p.phase !== "rolled_back"; i++) p = await round(c, nodes, plan.plan_id, 2);
    expect(p.phase, p.reason).toBe("rolled_back");
    expect(nodes.map((n) => n.running)).toEqual(nodes.map((n) => (sentBack.includes(n.nodeId) ? REL_BACK : REL_OLD)));
  });

  it("a hanging node becomes stuck (listed by /v1/rollouts/stuck), recover retry starts it again and it completes; recover rollback sends it back", async () => {
    const { c, nodes } = await fleet(2);
    nodes[1]!.mode = "hang";
    const plan = await create(c, { stages: [{ stage_id: "all", batch: { percent: 100 } }], failure_budget: { max_failures: 1 } });
    let p = await round(c, nodes, plan.plan_id, 2);
    expect(p.counters).toMatchObject({ succeeded: 1, in_progress: 1 });
    c.clock.advance(61_000);
    p = await round(c, nodes, plan.plan_id, 2);
    expect(p.counters.stuck).toBe(1);
    const stuck = (await op(c, "GET", "/v1/rollouts/stuck?threshold_seconds=30")).json<{ stuck_plans: Array<{ plan_id: string; stuck_nodes: Array<{ node_id: string }> }> }>();
    expect(stuck.stuck_plans.map((s) => [s.plan_id, s.stuck_nodes.map((n) => n.node_id)])).toEqual([[plan.plan_id, ["edge-1"]]]);
    nodes[1]!.mode = "ok";
    nodes[1]!.etag = undefined; // the restarted node polls afresh
    const rec = await op(c, "POST", `/v1/rollouts/${plan.plan_id}/recover`, { strategy: "retry" });
    expect(rec.statusCode, rec.body).toBe(200);
    for (let i = 0; i < 4 && p.phase !== "completed"; i++) p = await round(c, nodes, plan.plan_id, 2);
    expect(p.phase, p.reason).toBe("completed");
    expect(p.nodes.find((n) => n.node_id === "edge-1")?.attempts).toBe(2);

    const { c: c2, nodes: n2 } = await (async () => {
      await c.close();
      cp = undefined;
      return fleet(2);
    })();
    n2[1]!.mode = "hang";
    const plan2 = await create(c2, { stages: [{ stage_id: "all", batch: { percent: 100 } }], failure_budget: { max_failures: 1 } });
    await round(c2, n2, plan2.plan_id, 2);
    c2.clock.advance(61_000);
    expect((await round(c2, n2, plan2.plan_id, 2)).counters.stuck).toBe(1);
    const rb = await op(c2, "POST", `/v1/rollouts/${plan2.plan_id}/recover`, { strategy: "rollback" });
    expect(rb.json<Rollout>().phase).toBe("rolling_back");
    expect(Object.values(await assignments(c2))).toEqual([REL_BACK, REL_BACK]);
    // The hung node is restarted (its watchdog) and takes the rollback target like the other one.
    n2[1]!.mode = "ok";
    n2[1]!.etag = undefined;
    let q = await get(c2, plan2.plan_id);
    for (let i = 0; i < 3 && q.phase !== "rolled_back"; i++) q = await round(c2, n2, plan2.plan_id, 2);
    expect(q.phase, q.reason).toBe("rolled_back");
  });

  it("a manual gate holds the next batch until an operator approves the stage", async () => {
    const { c, nodes } = await fleet(3);
    const plan = await create(c, { stages: [{ stage_id: "canary", batch: { count: 1 }, gates: [{ kind: "manual" }] }, { stage_id: "all", batch: { percent: 100 } }] });
    let p = plan;
    for (let i = 0; i < 3; i++) p = await round(c, nodes, plan.plan_id, 2);
    expect(p.phase).toBe("gate_wait");
    expect(p.counters.succeeded).toBe(1);
    expect(Object.values(await assignments(c)).filter((r) => r === REL_NEW)).toHaveLength(1);
    const gates = (await op(c, "GET", `/v1/rollouts/${plan.plan_id}/stages/canary/gates`)).json<{ all_passed: boolean; gates: Array<{ kind: string; status: string }> }>();
    expect(gates).toMatchObject({ all_passed: false, gates: [{ kind: "manual", status: "waiting" }] });
    const a = await op(c, "POST", `/v1/rollouts/${plan.plan_id}/stages/canary/approve`, { reason: "looks good" });
    expect(a.json()).toMatchObject({ approved: true, promoted: true });
    for (let i = 0; i < 4 && p.phase !== "completed"; i++) p = await round(c, nodes, plan.plan_id, 2);
    expect(p.phase).toBe("completed");
  });

  it("pause stops starting nodes, resume goes on, cancel is terminal; illegal transitions are 409 problem details naming the state", async () => {
    const { c, nodes } = await fleet(4);
    const plan = await create(c, { max_concurrency: 1, stages: [{ stage_id: "all", batch: { percent: 100 } }] });
    let p = await round(c, nodes, plan.plan_id, 1);
    expect((await op(c, "POST", `/v1/rollouts/${plan.plan_id}/pause`, { reason: "lunch" })).json<Rollout>().phase).toBe("paused");
    const before = p.counters.succeeded + p.counters.in_progress;
    for (let i = 0; i < 3; i++) p = await round(c, nodes, plan.plan_id, 1);
    expect(p.counters.succeeded + p.counters.in_progress).toBe(before);
    expectProblem(await op(c, "POST", `/v1/rollouts/${plan.plan_id}/pause`), 409, "ROLLOUT_ILLEGAL_PHASE", "paused");
    expect((await op(c, "POST", `/v1/rollouts/${plan.plan_id}/resume`)).json<Rollout>().phase).toBe("active");
    expectProblem(await op(c, "POST", `/v1/rollouts/${plan.plan_id}/resume`), 409, "ROLLOUT_ILLEGAL_PHASE", "active");
    p = await round(c, nodes, plan.plan_id, 1);
    expect(p.counters.succeeded).toBeGreaterThan(before - 1);
    expect((await op(c, "POST", `/v1/rollouts/${plan.plan_id}/cancel`)).json<Rollout>().phase).toBe("cancelled");
    expectProblem(await op(c, "POST", `/v1/rollouts/${plan.plan_id}/resume`), 409, "ROLLOUT_PLAN_TERMINAL", "cancelled");
    expectProblem(await op(c, "POST", `/v1/rollouts/${plan.plan_id}/rollback`), 409, "ROLLOUT_PLAN_TERMINAL", "cancelled");
    const version = await c.store.db.selectFrom("rollout_plans").select("version").executeTakeFirstOrThrow();
    await c.app.rollouts.scheduler.tickAll();
    expect((await c.store.db.selectFrom("rollout_plans").select("version").executeTakeFirstOrThrow()).version).toBe(version.version);
    expectProblem(await op(c, "GET", "/v1/rollouts/plan-00000000000000ff"), 404, "ROLLOUT_NOT_FOUND", "plan-00000000000000ff");
  });

  it("attack: a node acking a release it was not assigned → 409, the ack is not kept and the plan is unchanged", async () => {
    const { c, nodes } = await fleet(3);
    const plan = await create(c, { max_concurrency: 1, stages: [{ stage_id: "all", batch: { percent: 100 } }] });
    await c.app.rollouts.scheduler.tickAll();
    const started = (await get(c, plan.plan_id)).nodes.find((n) => n.state === "in_progress")!.node_id;
    const idle = nodes.find((n) => n.nodeId !== started)!;
    const acks = async (): Promise<number> => (await c.store.db.selectFrom("node_acks").select("ack_seq").execute()).length;
    const before = await get(c, plan.plan_id);
    const n0 = await acks();
    const cred = (idle as unknown as { cred: string }).cred;
    const r = await op(c, "POST", `/v1/nodes/${idle.nodeId}/ack`, { release_id: REL_NEW, phase: "activated", at: new Date(c.clock.now()).toISOString() }, cred);
    expectProblem(r, 409, "ROLLOUT_ILLEGAL_TRANSITION", idle.nodeId);
    expect(await acks()).toBe(n0);
    expect(await get(c, plan.plan_id)).toEqual(before);
  });

  it("attack: a viewer token creating a plan → 403, no plan and no assignment written", async () => {
    const { c } = await fleet(2);
    expectProblem(await op(c, "POST", "/v1/rollouts", planBody(), await c.tokenFor("viewer")), 403, "PERMISSION_DENIED");
    expect(await c.store.db.selectFrom("rollout_plans").select("plan_id").execute()).toEqual([]);
    expect(await assignments(c)).toEqual({});
  });

  it("attack: a plan for an unknown release → 400 naming release_id; a bad body → 400 naming the field; nothing written", async () => {
    const { c } = await fleet(2);
    expectProblem(await op(c, "POST", "/v1/rollouts", planBody({ release_id: "rel-00000000000000ee" })), 400, "ROLLOUT_RELEASE_UNKNOWN", "release_id");
    expectProblem(await op(c, "POST", "/v1/rollouts", { ...planBody(), surprise: 1 }), 400, "REQUEST_INVALID", "surprise");
    expectProblem(await op(c, "POST", "/v1/rollouts", planBody({ target: { nodes: ["edge-0", "ghost"] } })), 400, "ROLLOUT_NODE_UNKNOWN", "ghost");
    expect(await c.store.db.selectFrom("rollout_plans").select("plan_id").execute()).toEqual([]);
    expect(await assignments(c)).toEqual({});
  });

  it("attack: a rollback target nodes could never take — a lower sequence, issued before the plan's release, unknown, withdrawn, on another channel — is 422 ROLLOUT_ROLLBACK_UNREACHABLE naming previous_release_id, with the hint; nothing written", async () => {
    const { c } = await fleet(2);
    const REL_SAME_SEQ = "rel-00000000000000a3";
    const REL_WITHDRAWN = "rel-00000000000000a4";
    const REL_BETA = "rel-00000000000000a5";
    await putRelease(c.store, REL_SAME_SEQ, 2, { standby: true, channel: "edge" });
    await putRelease(c.store, REL_WITHDRAWN, 4, { standby: true });
    await c.store.db.updateTable("releases").set({ withdrawn_at: "2026-12-05T09:30:00.000Z" }).where("release_id", "=", REL_WITHDRAWN).execute();
    await putRelease(c.store, REL_BETA, 5, { standby: true, channel: "beta" });
    const REL_EARLY = "rel-00000000000000a6";
    await putRelease(c.store, REL_EARLY, 6, { standby: true, issuedAt: "2026-12-05T08:00:00.000Z" });
    const cases: Array<[string, RegExp]> = [
      [REL_OLD, /sequence 1, not above the plan's release rel-00000000000000a1 \(sequence 2\)/],
      ["rel-00000000000000ee", /no published release rel-00000000000000ee/],
      [REL_WITHDRAWN, /was withdrawn/],
      [REL_BETA, /on channel beta/],
      [REL_SAME_SEQ, /on channel edge/],
      // Above in sequence but signed before the candidate: a node refuses a statement issued before the newest it took.
      [REL_EARLY, /issued at 2026-12-05T08:00:00.000Z, before the plan's release/],
    ];
    for (const [prev, why] of cases) {
      const r = await op(c, "POST", "/v1/rollouts", planBody({ previous_release_id: prev }));
      expectProblem(r, 422, "ROLLOUT_ROLLBACK_UNREACHABLE", "previous_release_id");
      expect(r.json<{ detail: string }>().detail).toMatch(why);
      expect(r.json<{ hint: string }>().hint).toMatch(/autonomy release rollback .*--sequence N.*--standby/);
    }
    expect(await c.store.db.selectFrom("rollout_plans").select("plan_id").execute()).toEqual([]);
    expect(await assignments(c)).toEqual({});
    // The engine's own checks still come first where they apply; null stays allowed (no rollback at all).
    expectProblem(await op(c, "POST", "/v1/rollouts", planBody({ previous_release_id: REL_NEW })), 400, "ROLLOUT_PLAN_INVALID", "previous_release_id");
    expect((await op(c, "POST", "/v1/rollouts", planBody({ previous_release_id: null }))).statusCode).toBe(201);
  });

  it("a behaviour gate fed by ingested events: a cohort denying 10x more than the rest stops the rollout and rolls it back", async () => {
    const { c, nodes } = await fleet(4);
    // Two nodes outside the plan (site b) on the old release: "the rest" of the comparison.
    const rest: Array<{ id: string; cred: string }> = [];
    for (const id of ["other-0", "other-1"]) rest.push({ id, cred: await enrollNode(c, id, { site: "b" }) });
    const gate = { kind: "behaviour" as const, metric: "deny_rate" as const, comparison: "ratio" as const, threshold: 2, min_samples: 10, window_seconds: 600 };
    const plan = await create(c, { stages: [{ stage_id: "canary", batch: { count: 2 }, gates: [gate] }, { stage_id: "all", batch: { percent: 100 } }], failure_budget: { max_failures: 0 } });
    let p = plan;
    for (let i = 0; i < 3; i++) p = await round(c, nodes, plan.plan_id, 2);
    expect(p.phase).toBe("gate_wait");
    expect(p.stages[0]?.gates[0]).toMatchObject({ kind: "behaviour", status: "waiting" });
    let seq = 0;
    const decisions = async (nodeId: string, cred: string, release: string, total: number, denies: number): Promise<void> => {
      const at = new Date(c.clock.now()).toISOString();
      const events = Array.from({ length: total }, (_, i) => ({ event_id: `${nodeId}:g1:${++seq}`, event_type: "ai.policy.decision", node_id: nodeId, timestamp: at, release_id: release, attributes: { decision: i < denies ? "deny" : "allow", tool: "tool.echo" } }));
      const r = await op(c, "POST", "/v1/events", { events }, cred);
      expect(r.statusCode, r.body).toBe(200);
    };
    const canary = p.nodes.filter((n) => n.state === "succeeded").map((n) => n.node_id);
    expect(canary).toHaveLength(2);
    for (const id of canary) await decisions(id, (nodes.find((n) => n.nodeId === id) as unknown as { cred: string }).cred, REL_NEW, 10, 5);
    for (const r of rest) await decisions(r.id, r.cred, REL_OLD, 20, 1);
    p = await round(c, nodes, plan.plan_id, 2);
    expect(p.phase, p.reason).toMatch(/rolling_back|rolled_back/);
    expect(p.reason).toMatch(/behaviour gate failed: policy deny rate 0.5 in the cohort \(20 decisions\) vs 0.05 in the rest \(40\)/);
    // The canary goes to the rollback target; the nodes never started stay pinned where they were.
    const after = await assignments(c);
    expect(canary.map((id) => after[id])).toEqual([REL_BACK, REL_BACK]);
    expect(Object.entries(after).filter(([id]) => !canary.includes(id)).map(([, r]) => r)).toEqual([REL_OLD, REL_OLD]);
  });

  it("late joiners: a node enrolled after creation that matches the selector joins the next batch (include_next_batch), is assigned and rolled out", async () => {
    const { c, nodes, via } = await fleet(2);
    const plan = await create(c, { late_joiners: "include_next_batch" });
    const late = new SimNode("late-0", await enrollNode(c, "late-0", { site: "a" }), via, () => c.clock.now(), REL_OLD);
    await late.heartbeat();
    nodes.push(late);
    let p = plan;
    for (let i = 0; i < 6 && p.phase !== "completed"; i++) p = await round(c, nodes, plan.plan_id, 2);
    expect(p.phase, p.reason).toBe("completed");
    expect(p.nodes.find((n) => n.node_id === "late-0")).toMatchObject({ late_joiner: true, batch: 1, state: "succeeded" });
    expect(p.counters.members).toBe(3);
    expect((await assignments(c))["late-0"]).toBe(REL_NEW);
    expect(late.running).toBe(REL_NEW);
  });

  it("a member or late joiner that runs nothing is pinned to the channel's release below the plan's, never to the rollback target above it (it would refuse the plan's release when its batch starts)", async () => {
    const { c, via } = await fleet(2);
    const idle = new SimNode("idle-0", await enrollNode(c, "idle-0", { site: "a" }), via, () => c.clock.now(), null);
    await idle.heartbeat();
    const plan = await create(c, { late_joiners: "include_next_batch" });
    expect((await assignments(c))["idle-0"]).toBe(REL_OLD);
    const late = new SimNode("late-idle", await enrollNode(c, "late-idle", { site: "a" }), via, () => c.clock.now(), null);
    await late.heartbeat();
    await c.app.rollouts.scheduler.tickAll();
    expect((await get(c, plan.plan_id)).nodes.find((n) => n.node_id === "late-idle")).toMatchObject({ late_joiner: true, state: "pending" });
    expect((await assignments(c))["late-idle"]).toBe(REL_OLD);
    // What they are offered meanwhile: the base, not the candidate (channel latest) nor the standby target.
    expect(await late.step()).toBe(REL_OLD);
    expect(late.running).toBe(REL_OLD);
  });

  it("lists plans newest first with cursor paging", async () => {
    const { c } = await fleet(1);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      c.clock.advance(1000);
      ids.push((await create(c, { target: { nodes: ["edge-0"] }, stages: [{ stage_id: "all", batch: { percent: 100 } }], failure_budget: { max_failures: 0 } })).plan_id);
    }
    const p1 = (await op(c, "GET", "/v1/rollouts?limit=2")).json<{ rollouts: Array<{ plan_id: string }>; next_cursor: string | null }>();
    expect(p1.rollouts.map((r) => r.plan_id)).toEqual([ids[2], ids[1]]);
    const p2 = (await op(c, "GET", `/v1/rollouts?limit=2&cursor=${p1.next_cursor ?? ""}`)).json<{ rollouts: Array<{ plan_id: string }>; next_cursor: string | null }>();
    expect(p2).toMatchObject({ rollouts: [{ plan_id: ids[0] }], next_cursor: null });
  });
  it("review3: a rollback target for another repository, already expired, or expiring within the plan's stuck timeout is 422 ROLLOUT_ROLLBACK_UNREACHABLE naming previous_release_id (nodes refuse it: ACTIVATION_UNTRUSTED / ACTIVATION_EXPIRED); nothing written", async () => {
    const { c } = await fleet(1);
    const setBack = (v: { repository?: string; expires_at?: string }) => c.store.db.updateTable("releases").set(v).where("release_id", "=", REL_BACK).execute();
    const soon = new Date(c.clock.now() + 30_000).toISOString(); // inside the 60 s stuck timeout
    const cases: Array<[{ repository?: string; expires_at?: string }, RegExp]> = [
      [{ repository: "evil.example/other/agent" }, /for repository evil\.example\/other\/agent, the plan's release rel-00000000000000a1 for x/],
      [{ repository: "x", expires_at: "2026-12-05T09:30:00.000Z" }, /expires at 2026-12-05T09:30:00\.000Z, before the plan's stuck timeout \(60 s\)/],
      [{ expires_at: soon }, /before the plan's stuck timeout \(60 s\) from now/],
    ];
    for (const [set, why] of cases) {
      await setBack(set);
      const r = await op(c, "POST", "/v1/rollouts", planBody());
      expectProblem(r, 422, "ROLLOUT_ROLLBACK_UNREACHABLE", "previous_release_id");
      expect(r.json<{ detail: string }>().detail).toMatch(why);
    }
    expect(await c.store.db.selectFrom("rollout_plans").select("plan_id").execute()).toEqual([]);
    await setBack({ expires_at: "2027-12-05T09:00:00.000Z" });
    expect((await op(c, "POST", "/v1/rollouts", planBody())).statusCode).toBe(201);
  });

  it("review3: a plan's release withdrawn after the plan started is no longer offered to its started nodes, and the plan pauses (reason: release withdrawn) so no further batch starts", async () => {
    const { c, nodes } = await fleet(2);
    const plan = await create(c, { max_concurrency: 1, stages: [{ stage_id: "all", batch: { percent: 100 } }] });
    c.clock.advance(1000);
    await c.app.rollouts.scheduler.tickAll();
    const started = (await get(c, plan.plan_id)).nodes.find((n) => n.state === "in_progress");
    if (started === undefined) throw new Error("no node started");
    const cred = nodes.find((n) => n.nodeId === started.node_id);
    const poll = async (): Promise<string> => {
      const r = await c.app.inject({ method: "GET", url: "/v1/releases/latest?channel=stable", headers: bearer(cred?.cred ?? "") });
      return r.json<{ release_id: string }>().release_id;
    };
    expect(await poll()).toBe(REL_NEW);
    expect((await op(c, "POST", `/v1/releases/${REL_NEW}/withdraw`)).statusCode).toBe(200);
    // No candidate: answered as if unassigned, the channel's latest live release (REL_OLD, what it ran).
    expect(await poll()).toBe(REL_OLD);
    const paused = await get(c, plan.plan_id);
    expect(paused.phase).toBe("paused");
    expect(paused.reason).toMatch(/release rel-00000000000000a1 withdrawn/);
    c.clock.advance(120_000);
    await c.app.rollouts.scheduler.tickAll();
    expect((await get(c, plan.plan_id)).nodes.filter((n) => n.state === "pending")).toHaveLength(1);
    expect(Object.values(await assignments(c)).filter((r) => r === REL_NEW)).toHaveLength(1);
  });

  it("review3: a rollback target withdrawn after creation pauses the plan, and a manual rollback or recover rollback is 422 ROLLOUT_ROLLBACK_UNREACHABLE naming previous_release_id, the plan unchanged", async () => {
    const { c } = await fleet(1);
    const plan = await create(c);
    expect((await op(c, "POST", `/v1/releases/${REL_BACK}/withdraw`)).statusCode).toBe(200);
    const paused = await get(c, plan.plan_id);
    expect(paused.phase).toBe("paused");
    expect(paused.reason).toMatch(/rollback target rel-00000000000000a2 withdrawn/);
    const r = await op(c, "POST", `/v1/rollouts/${plan.plan_id}/rollback`, { reason: "try" });
    expectProblem(r, 422, "ROLLOUT_ROLLBACK_UNREACHABLE", "previous_release_id");
    expect(r.json<{ detail: string }>().detail).toMatch(/rollback target rel-00000000000000a2 was withdrawn/);
    expectProblem(await op(c, "POST", `/v1/rollouts/${plan.plan_id}/recover`, { strategy: "rollback" }), 422, "ROLLOUT_ROLLBACK_UNREACHABLE", "previous_release_id");
    expect((await get(c, plan.plan_id)).phase).toBe("paused");
  });

  it("review3: a heartbeat naming a release the control plane never offered the node confirms nothing: a started node stays in_progress until its poll was answered the release", async () => {
    const { c, nodes } = await fleet(1);
    const plan = await create(c, { stages: [{ stage_id: "all", batch: { percent: 100 } }] });
    c.clock.advance(1000);
    await c.app.rollouts.scheduler.tickAll();
    expect((await get(c, plan.plan_id)).nodes[0]?.state).toBe("in_progress");
    const node = nodes[0] as SimNode;
    node.running = REL_NEW; // claims it without having polled it
    await node.heartbeat();
    c.clock.advance(1000);
    await c.app.rollouts.scheduler.tickAll();
    expect((await get(c, plan.plan_id)).nodes[0]?.state).toBe("in_progress");
    // Once its poll was answered REL_NEW (then its activated ack was lost), the heartbeat confirms it.
    const r = await c.app.inject({ method: "GET", url: "/v1/releases/latest?channel=stable", headers: bearer(node.cred) });
    expect(r.json<{ release_id: string }>().release_id).toBe(REL_NEW);
    c.clock.advance(1000);
    await c.app.rollouts.scheduler.tickAll();
    expect((await get(c, plan.plan_id)).nodes[0]?.state).toBe("succeeded");
  });
});
