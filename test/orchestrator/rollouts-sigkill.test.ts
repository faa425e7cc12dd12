/**
 * The scheduler survives SIGKILL mid-rollout: a real `autonomy serve` child
 * (the built binary: `npm run build` first) on SQLite and on PostgreSQL runs a
 * plan with real HTTP nodes polling and acking; it is SIGKILLed while a node
 * is in flight, restarted on the same store, and resumes exactly where the
 * store says (the restarted server shows the stored state unchanged, no node
 * is started twice) and completes the plan.
 */
import { afterEach, expect, it } from "vitest";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpClient } from "../../src/cpapi/index.js";
import type { Rollout } from "../../src/cpapi/index.js";
import { openStore } from "../../src/orchestrator/index.js";
import { parsePlanState, toRollout } from "../../src/orchestrator/rollouts/index.js";
import { AUTONOMY_BIN } from "../helpers/cli.js";
import { putRelease } from "../helpers/cp-fleet.js";
import { SimNode } from "../helpers/cp-rollout-nodes.js";
import type { Via } from "../helpers/cp-rollout-nodes.js";
import { describeDialects } from "../helpers/databases.js";

const REL_OLD = "rel-00000000000000b0";
const REL_NEW = "rel-00000000000000b1";
/** The rollback target: REL_OLD's content re-signed above REL_NEW, standby (docs/rollouts.md). */
const REL_BACK = "rel-00000000000000b2";

interface Served {
  child: ChildProcess;
  url: string;
  exited: Promise<number | null>;
}

async function startServe(location: string, tokenFile: string): Promise<Served> {
  const child = spawn(process.execPath, [AUTONOMY_BIN, "serve", "--listen", "127.0.0.1:0", "--json", "--db", location, "--bootstrap-token-file", tokenFile, "--scheduler-interval", "200ms"], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not become ready:\n${err}`)), 30_000);
    child.stderr?.on("data", (d: Buffer) => {
      err += d.toString("utf8");
      const m = /^\{"ok":true,"url":"([^"]+)"/m.exec(err);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void exited.then((code) => reject(new Error(`serve exited ${String(code)}:\n${err}`)));
  });
  return { child, url, exited };
}

/** Real HTTP for the virtual nodes; the base URL changes when the server restarts. */
function httpVia(base: { url: string }): Via {
  return async (r) => {
    const res = await fetch(new URL(r.url, base.url), {
      method: r.method,
      headers: { authorization: `Bearer ${r.token}`, ...(r.body !== undefined ? { "content-type": "application/json" } : {}), ...(r.headers ?? {}) },
      ...(r.body !== undefined ? { body: JSON.stringify(r.body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, etag: res.headers.get("etag") ?? undefined, json: text ? (JSON.parse(text) as unknown) : undefined };
  };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describeDialects("rollout scheduler across SIGKILL", (db) => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it("SIGKILL mid-rollout, restart on the same store: the plan is exactly as stored, no node started twice, and it completes", async () => {
    const dir = await mkdtemp(join(tmpdir(), "autonomy-sigkill-"));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const location = db.dialect === "sqlite" ? join(dir, "cp.db") : await db.fresh();
    const tokenFile = join(dir, "boot.token");
    let s = await startServe(location, tokenFile);
    cleanup.push(() => Promise.resolve(void (s.child.exitCode === null && s.child.kill("SIGKILL"))));
    const store = await openStore(location);
    await putRelease(store, REL_OLD, 1);
    await putRelease(store, REL_NEW, 2);
    await putRelease(store, REL_BACK, 3, { standby: true });
    const base = { url: s.url };
    const owner = new CpClient({ baseUrl: s.url, token: (await readFile(tokenFile, "utf8")).trim() });
    const nodes: SimNode[] = [];
    for (let i = 0; i < 4; i++) {
      const id = `kill-${i}`;
      const et = await owner.createEnrollmentToken({ node_id: id });
      const { credential } = await owner.enroll(et.token, { node_id: id });
      const n = new SimNode(id, credential, httpVia(base), () => Date.now(), REL_OLD);
      await n.heartbeat();
      nodes.push(n);
    }
    const plan = await owner.createRollout({ release_id: REL_NEW, previous_release_id: REL_BACK, target: { nodes: nodes.map((n) => n.nodeId) }, max_concurrency: 1, stages: [{ stage_id: "all", batch: { percent: 100 } }], failure_budget: { max_failures: 0 }, stuck_timeout_seconds: 600, late_joiners: "ignore" });
    // Run until two nodes succeeded and the scheduler has started a third (in flight: assigned, not yet acked).
    await until("two nodes done and a third in flight", async () => {
      const p = await owner.getRollout(plan.plan_id);
      if (p.counters.succeeded >= 2 && p.counters.in_progress === 1) return p;
      if (p.counters.in_progress === 1) for (const n of nodes) await n.step();
      return undefined;
    });
    s.child.kill("SIGKILL");
    expect(await s.exited).toBe(null);
    const row = await store.db.selectFrom("rollout_plans").select(["state", "version"]).where("plan_id", "=", plan.plan_id).executeTakeFirstOrThrow();
    const stored = toRollout(parsePlanState(JSON.parse(row.state) as unknown));
    expect(stored.counters).toMatchObject({ succeeded: 2, in_progress: 1, pending: 1 });
    const inFlight = stored.nodes.find((n) => n.state === "in_progress")!.node_id;
    const assigned = await store.db.selectFrom("node_assignments").select(["node_id", "release_id"]).orderBy("node_id").execute();
    expect(assigned.filter((a) => a.release_id === REL_NEW).map((a) => a.node_id).sort()).toEqual(stored.nodes.filter((n) => n.state !== "pending").map((n) => n.node_id).sort());

    s = await startServe(location, tokenFile);
    base.url = s.url;
    const again = new CpClient({ baseUrl: s.url, token: (await readFile(tokenFile, "utf8")).trim() });
    // Nothing moves until the in-flight node reports: the restarted server shows exactly the stored plan.
    await new Promise((r) => setTimeout(r, 600));
    expect(await again.getRollout(plan.plan_id)).toEqual(stored);
    let done: Rollout | undefined;
    await until("the plan completes", async () => {
      for (const n of nodes) await n.step();
      const p = await again.getRollout(plan.plan_id);
      if (p.phase === "completed") done = p;
      return done;
    });
    expect(done?.nodes.map((n) => n.attempts)).toEqual([1, 1, 1, 1]);
    expect(done?.nodes.find((n) => n.node_id === inFlight)?.state).toBe("succeeded");
    expect(nodes.map((n) => n.running)).toEqual(Array(4).fill(REL_NEW));
    await store.close();
    s.child.kill("SIGTERM");
    expect(await s.exited).toBe(0);
  }, 120_000);
});
