/**
 * The rollouts store under contention: a step that keeps losing the
 * optimistic race is retried and then refused (409 ROLLOUT_CONFLICT) with
 * nothing kept; two servers on one store ticking the same plan at once never
 * start a node twice nor exceed max_concurrency; another server's assignment
 * is seen by the poll route within the cache TTL, this server's at once.
 */
import { afterEach, expect, it } from "vitest";
import { sql } from "kysely";
import type { Rollout } from "../../src/cpapi/index.js";
import { PlanStateCache } from "../../src/orchestrator/plans/state-cache.js";
import { stepInTx, stepPlan } from "../../src/orchestrator/plans/store.js";
import { withWriteTransaction } from "../../src/orchestrator/db/write-lock.js";
import { parsePlanState, pause } from "../../src/orchestrator/rollouts/index.js";
import { bearer, openTestCp } from "../helpers/cp-app.js";
import type { TestCp } from "../helpers/cp-app.js";
import { enrollNode, putRelease } from "../helpers/cp-fleet.js";
import { describeDialects } from "../helpers/databases.js";

const REL_OLD = "rel-00000000000000d0";
const REL_NEW = "rel-00000000000000d1";
/** The rollback target: REL_OLD's content re-signed above REL_NEW, standby (docs/rollouts.md). */
const REL_BACK = "rel-00000000000000d2";

describeDialects("rollouts store", (db) => {
  const open: TestCp[] = [];
  afterEach(async () => {
    for (const c of open.splice(0).reverse()) await c.close();
  });

  async function setup(n: number, location?: string): Promise<{ c: TestCp; location: string; creds: string[] }> {
    const loc = location ?? (await db.fresh());
    const c = await openTestCp({ location: loc, latestCacheMs: 60_000 });
    open.push(c);
    const creds: string[] = [];
    if (location === undefined) {
      await putRelease(c.store, REL_OLD, 1);
      await putRelease(c.store, REL_NEW, 2);
      await putRelease(c.store, REL_BACK, 3, { standby: true });
      for (let i = 0; i < n; i++) creds.push(await enrollNode(c, `edge-${i}`));
    }
    return { c, location: loc, creds };
  }

  const create = async (c: TestCp, n: number, max: number): Promise<Rollout> => {
    const r = await c.app.inject({
      method: "POST", url: "/v1/rollouts", headers: bearer(c.owner),
      payload: { release_id: REL_NEW, previous_release_id: REL_BACK, target: { nodes: Array.from({ length: n }, (_, i) => `edge-${i}`) }, max_concurrency: max, stages: [{ stage_id: "all", batch: { percent: 100 } }], failure_budget: { max_failures: 0 }, stuck_timeout_seconds: 600, late_joiners: "ignore" },
    });
    expect(r.statusCode, r.body).toBe(201);
    return r.json<Rollout>();
  };

  it("a step that keeps losing the version race is retried, then refused with ROLLOUT_CONFLICT, and nothing of it is kept", async () => {
    const { c } = await setup(2);
    const plan = await create(c, 2, 1);
    let runs = 0;
    const attempt = stepPlan(c.store, plan.plan_id, () => c.clock.now(), async (state, tx) => {
      runs++;
      // Another writer moves the row to the next version between our read and our write.
      await sql`update rollout_plans set version = version + 1 where plan_id = ${plan.plan_id}`.execute(tx);
      return { ...pause(state, c.clock.now()), result: undefined };
    });
    await expect(attempt).rejects.toMatchObject({ code: "ROLLOUT_CONFLICT" });
    expect(runs).toBe(6);
    const row = await c.store.db.selectFrom("rollout_plans").select(["state", "version"]).executeTakeFirstOrThrow();
    expect(Number(row.version)).toBe(1);
    expect(parsePlanState(JSON.parse(row.state) as unknown).phase).toBe("active");
  });

  // PostgreSQL: the ticks really overlap (row locks, SKIP LOCKED, version check). SQLite: two
  // connections in ONE process would block each other's synchronous busy-wait, so they alternate
  // (across processes the file's write lock serializes them the same way).
  it("two servers ticking one plan (concurrently on PostgreSQL) never start a node twice nor exceed max_concurrency", async () => {
    const { c: a, location } = await setup(6);
    const { c: b } = await setup(0, location);
    const plan = await create(a, 6, 2);
    for (let round = 0; round < 8; round++) {
      a.clock.advance(1000);
      b.clock.set(a.clock.now());
      const ticks = [a, b, a, b].map((c) => () => c.app.rollouts.scheduler.tickAll());
      if (db.dialect === "postgres") await Promise.all(ticks.map((t) => t()));
      else for (const t of ticks) await t();
      const p = (await a.app.inject({ method: "GET", url: `/v1/rollouts/${plan.plan_id}`, headers: bearer(a.owner) })).json<Rollout>();
      expect(p.counters.in_progress).toBeLessThanOrEqual(2);
      expect(p.nodes.every((n) => n.attempts <= 1)).toBe(true);
    }
    const assigned = await a.store.db.selectFrom("node_assignments").select(["node_id", "release_id"]).where("release_id", "=", REL_NEW).execute();
    expect(assigned).toHaveLength(2);
  });

  it("acks through one server racing ticks on another lose no update: every ack's node ends succeeded", async () => {
    const { c: a, location, creds } = await setup(6);
    const { c: b } = await setup(0, location);
    const plan = await create(a, 6, 6);
    await a.app.rollouts.scheduler.tickAll();
    const at = new Date(a.clock.now()).toISOString();
    const acks = creds.map((cred, i) => () => b.app.inject({ method: "POST", url: `/v1/nodes/edge-${i}/ack`, headers: bearer(cred), payload: { release_id: REL_NEW, phase: "activated", at } }));
    const ticks = Array.from({ length: 12 }, () => () => a.app.rollouts.scheduler.tickAll());
    const all = acks.flatMap((ack, i) => [ack, ticks[2 * i]!, ticks[2 * i + 1]!]);
    const results = db.dialect === "postgres" ? await Promise.all(all.map((f) => f())) : await all.reduce<Promise<unknown[]>>(async (acc, f) => [...(await acc), await f()], Promise.resolve([]));
    for (const r of results) if (typeof r === "object" && r !== null && "statusCode" in r) expect((r as { statusCode: number }).statusCode).toBe(200);
    const p = (await a.app.inject({ method: "GET", url: `/v1/rollouts/${plan.plan_id}`, headers: bearer(a.owner) })).json<Rollout>();
    expect(p.counters.succeeded, JSON.stringify(p.counters)).toBe(6);
  });

  it("the poll route: this server's assignment at once; another server's within the cache TTL", async () => {
    const { c: a, location, creds } = await setup(1);
    const { c: b } = await setup(0, location);
    const poll = async (c: TestCp): Promise<string> => (await c.app.inject({ method: "GET", url: "/v1/releases/latest?channel=stable", headers: bearer(creds[0] ?? "") })).json<{ release_id: string }>().release_id;
    expect(await poll(a)).toBe(REL_NEW);
    expect(await poll(b)).toBe(REL_NEW);
    await create(a, 1, 1); // pins edge-0 (it runs nothing yet) to the channel's release below the plan's, never to the standby rollback target
    expect(await poll(a)).toBe(REL_OLD);
    expect(await poll(b)).toBe(REL_NEW); // b's cache (TTL 60 s) has not expired
    b.clock.advance(60_001);
    expect(await poll(b)).toBe(REL_OLD);
  });

  it("1,200 members: pins, starts and rollbacks are written in multi-row chunks (several per step) and every node ends with exactly the assignment the engine decided", async () => {
    const { c } = await setup(0);
    const n = 1200;
    const ids = Array.from({ length: n }, (_, i) => `bulk-${String(i).padStart(4, "0")}`);
    for (let i = 0; i < n; i += 400) {
      await c.store.db.insertInto("nodes").values(ids.slice(i, i + 400).map((node_id) => ({ node_id, labels: JSON.stringify({ site: "bulk" }), enrolled_at: "2026-12-05T09:00:00.000Z" }))).execute();
    }
    const r = await c.app.inject({
      method: "POST", url: "/v1/rollouts", headers: bearer(c.owner),
      payload: { release_id: REL_NEW, previous_release_id: REL_BACK, target: { selector: { site: "bulk" } }, max_concurrency: 1100, stages: [{ stage_id: "all", batch: { percent: 100 } }], failure_budget: { max_failures: 0 }, stuck_timeout_seconds: 600, late_joiners: "ignore" },
    });
    expect(r.statusCode, r.body).toBe(201);
    const planId = r.json<Rollout>().plan_id;
    const byRelease = async (): Promise<Record<string, number>> => {
      const rows = await c.store.db.selectFrom("node_assignments").select(["release_id", "plan_id"]).execute();
      expect(rows.every((x) => x.plan_id === planId)).toBe(true);
      return rows.reduce<Record<string, number>>((acc, x) => ({ ...acc, [x.release_id]: (acc[x.release_id] ?? 0) + 1 }), {});
    };
    // Nodes that run nothing are pinned to the base (three chunks of at most 500).
    expect(await byRelease()).toEqual({ [REL_OLD]: n });
    c.clock.advance(1000);
    await c.app.rollouts.scheduler.tickAll();
    expect(await byRelease()).toEqual({ [REL_NEW]: 1100, [REL_OLD]: 100 });
    const rb = await c.app.inject({ method: "POST", url: `/v1/rollouts/${planId}/rollback`, headers: bearer(c.owner), payload: { reason: "bulk" } });
    expect(rb.statusCode, rb.body).toBe(200);
    expect(await byRelease()).toEqual({ [REL_BACK]: 1100, [REL_OLD]: 100 });
  }, 120_000);
  it("two servers on one store: a plan state cached by one server is never used once the other server stepped the plan (version check)", async () => {
    const { c: a, location } = await setup(2);
    const { c: b } = await setup(0, location);
    const plan = await create(a, 2, 1);
    const cmd = async (c: TestCp, verb: string): Promise<Rollout> => {
      const r = await c.app.inject({ method: "POST", url: `/v1/rollouts/${plan.plan_id}/${verb}`, headers: bearer(c.owner), payload: {} });
      expect(r.statusCode, r.body).toBe(200);
      return r.json<Rollout>();
    };
    const phaseSeenBy = async (c: TestCp): Promise<string> => {
      const r = await c.app.inject({ method: "GET", url: `/v1/rollouts/${plan.plan_id}`, headers: bearer(c.owner) });
      return r.json<Rollout>().phase;
    };
    expect((await cmd(a, "pause")).phase).toBe("paused"); // a caches version 2 (paused)
    expect(await phaseSeenBy(a)).toBe("paused");
    expect((await cmd(b, "resume")).phase).toBe("active"); // b writes version 3 behind a's back
    expect(await phaseSeenBy(a)).toBe("active");
    // a steps from version 3 (resume on a stale "paused" would have been accepted; pause from active must be too)
    expect((await cmd(a, "pause")).phase).toBe("paused");
    expect(await phaseSeenBy(b)).toBe("paused");
    const row = await a.store.db.selectFrom("rollout_plans").select("version").executeTakeFirstOrThrow();
    expect(Number(row.version)).toBe(4);
  });
  it("a step whose transaction rolls back never enters the plan state cache: the next step starts from the stored version", async () => {
    const { c } = await setup(2);
    const plan = await create(c, 2, 1);
    const cache = new PlanStateCache();
    const failed = withWriteTransaction(c.store, async (tx) => {
      const out = await stepInTx(tx, c.store.dialect, plan.plan_id, c.clock.now(), (s) => ({ ...pause(s, c.clock.now()), result: undefined }), "wait", cache);
      expect(out?.state.phase).toBe("paused");
      throw new Error("the commit never happens");
    });
    await expect(failed).rejects.toThrow("the commit never happens");
    // The stored row is still version 1 (active); a paused state at version 2 was never cached.
    expect(cache.get(plan.plan_id, 2)).toBeUndefined();
    const out = await stepPlan(c.store, plan.plan_id, () => c.clock.now(), (s) => ({ state: s, effects: [], result: s.phase }), { cache });
    expect(out?.result).toBe("active");
    const stepped = await stepPlan(c.store, plan.plan_id, () => c.clock.now(), (s) => ({ ...pause(s, c.clock.now()), result: undefined }), { cache });
    expect(stepped?.state.phase).toBe("paused");
    expect(cache.get(plan.plan_id, 2)?.state.phase).toBe("paused");
  });
});
