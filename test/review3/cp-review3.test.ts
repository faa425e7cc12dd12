/**
 * Adversarial review 3 (wave of 2026-12-06: standby releases, rollback-target
 * check, acks only for offered releases, event time bound, 0b6f256). Each test
 * states what must hold; a failing test is a finding (SQLite, in-process).
 */
import { afterEach, describe, expect, it } from "vitest";
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { MIGRATIONS, bootstrapOwnerToken, buildApp, migrateStore, openStore } from "../../src/orchestrator/index.js";
import { createLogger } from "../../src/observability/index.js";
import { systemClock } from "../../src/lib/index.js";
import type { CreateRolloutInput } from "../../src/cpapi/index.js";
import { signStatement } from "../../src/supplychain/index.js";
import { metricBuckets } from "../../src/orchestrator/plans/observe.js";
import { bearer, openTestCp } from "../helpers/cp-app.js";
import type { TestCp } from "../helpers/cp-app.js";
import { enrollNode, putRelease } from "../helpers/cp-fleet.js";
import { samplePredicate } from "../helpers/statements.js";

const signingKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
const IMAGE = "registry.example/team/agent:1.0";
const REL_OLD = "rel-00000000000000a0";
const REL_NEW = "rel-00000000000000a1";
const REL_BACK = "rel-00000000000000a2";

const open: TestCp[] = [];
async function cpOpen(): Promise<TestCp> {
  const cp = await openTestCp();
  open.push(cp);
  return cp;
}
afterEach(async () => {
  for (const cp of open.splice(0)) await cp.close();
});

const op = (c: TestCp, method: "GET" | "POST", url: string, payload?: object, token = c.owner) =>
  c.app.inject({ method, url, headers: bearer(token), ...(payload !== undefined ? { payload } : {}) });

function planBody(over: Partial<CreateRolloutInput> = {}): CreateRolloutInput {
  return {
    release_id: REL_NEW, previous_release_id: REL_BACK, target: { selector: { site: "a" } }, max_concurrency: 1,
    stages: [{ stage_id: "all", batch: { percent: 100 } }], failure_budget: { max_failures: 0 }, stuck_timeout_seconds: 60, late_joiners: "ignore", ...over,
  };
}

/** REL_OLD (1), REL_NEW (2, latest), REL_BACK (3, standby) and one node on site a. */
async function trio(): Promise<{ c: TestCp; cred: string }> {
  const c = await cpOpen();
  await putRelease(c.store, REL_OLD, 1);
  await putRelease(c.store, REL_NEW, 2);
  await putRelease(c.store, REL_BACK, 3, { standby: true });
  const cred = await enrollNode(c, "edge-0", { site: "a" });
  return { c, cred };
}

describe("review3: releases", () => {
  it("review3: re-publishing a withdrawn release's exact statement answers a 4xx problem, not a 500", async () => {
    const c = await cpOpen();
    const p = samplePredicate(1);
    const body = { statement: signStatement(p, [signingKey]).envelope, image: IMAGE, channel: p.channel };
    const first = await op(c, "POST", "/v1/releases", body);
    expect(first.statusCode, first.body).toBe(201);
    const id = first.json<{ release_id: string }>().release_id;
    expect((await op(c, "POST", `/v1/releases/${id}/withdraw`)).statusCode).toBe(200);
    const again = await op(c, "POST", "/v1/releases", body);
    expect(again.statusCode, again.body).toBeGreaterThanOrEqual(400);
    expect(again.statusCode, again.body).toBeLessThan(500);
  });
});

describe("review3: rollback target nodes would refuse", () => {
  it("review3: a rollback target for another repository on the same channel is refused at plan creation (nodes answer ACTIVATION_UNTRUSTED)", async () => {
    const { c } = await trio();
    await c.store.db.updateTable("releases").set({ repository: "evil.example/other/agent" }).where("release_id", "=", REL_BACK).execute();
    const r = await op(c, "POST", "/v1/rollouts", planBody());
    expect(r.statusCode, r.body).toBe(422);
  });

  it("review3: a rollback target that has already expired is refused at plan creation (nodes answer ACTIVATION_EXPIRED, the rollback can never be confirmed)", async () => {
    const { c } = await trio();
    await c.store.db.updateTable("releases").set({ expires_at: "2026-12-05T09:30:00.000Z" }).where("release_id", "=", REL_BACK).execute();
    const r = await op(c, "POST", "/v1/rollouts", planBody());
    expect(r.statusCode, r.body).toBe(422);
  });
});

describe("review3: node self-reports", () => {
  it("review3: a node cannot heartbeat a release it was never offered (the standby rollback target), as it cannot ack one", async () => {
    const { c, cred } = await trio();
    const ack = await op(c, "POST", "/v1/nodes/edge-0/ack", { release_id: REL_BACK, phase: "activated", detail: "", at: new Date(c.clock.now()).toISOString() }, cred);
    expect(ack.statusCode).toBe(409); // the ack rule holds
    const hb = await op(c, "POST", "/v1/nodes/edge-0/heartbeat", { release_id: REL_BACK, activation_sequence: null, lock_fingerprint: null, boot_epoch: 1, wal_generation: null, runtime_version: "0.1.0" }, cred);
    // The heartbeat's release now drives rollout success (0b6f256) and rollback confirmation: it needs the same rule.
    expect(hb.statusCode, hb.body).toBe(409);
  });
});

describe("review3: event times vs behaviour gates", () => {
  const decision = (id: string, ts: string) => ({
    event_id: id, event_type: "ai.policy.decision", node_id: "edge-0", timestamp: ts, release_id: REL_NEW,
    attributes: { decision: "deny", release_id: REL_NEW },
  });

  it("review3: events a node dates up to 24 h ahead are accepted, and a behaviour gate evaluated now still counts them", async () => {
    const { c, cred } = await trio();
    const now = c.clock.now();
    const ahead = new Date(now + 60 * 60 * 1000).toISOString(); // node clock 1 h fast: accepted by the 24 h bound
    const w = await op(c, "POST", "/v1/events", { events: [decision("d1", ahead), decision("d2", ahead)] }, cred);
    expect(w.statusCode, w.body).toBe(200);
    // A gate window [batch finished, now] as observe() builds it.
    const buckets = await metricBuckets(c.store.db, c.store.dialect, now - 5 * 60 * 1000, now);
    expect(buckets.reduce((s, b) => s + b.denies, 0)).toBe(2);
  });

  it("review3: events of a node whose clock is 10 min behind still count in the gate window that follows its activation", async () => {
    const { c, cred } = await trio();
    const now = c.clock.now();
    const behind = new Date(now - 10 * 60 * 1000).toISOString();
    const w = await op(c, "POST", "/v1/events", { events: [decision("d3", behind)] }, cred);
    expect(w.statusCode, w.body).toBe(200);
    // The batch finished 5 min ago (server time), the node denied since then by its own (slow) clock.
    const buckets = await metricBuckets(c.store.db, c.store.dialect, now - 5 * 60 * 1000, now);
    expect(buckets.reduce((s, b) => s + b.denies, 0)).toBe(1);
  });
});

describe("review3: offers", () => {
  it("review3: a node's first poll of a release while another writer holds the SQLite store answers 503 STORE_BUSY (as offers.ts promises), not 500, and a 200 never leaves unrecorded", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rev3-busy-"));
    const path = join(dir, "cp.db");
    const store = await openStore(path, { busyTimeoutMs: 50 });
    await migrateStore(store, MIGRATIONS);
    const owner = (await bootstrapOwnerToken(store, systemClock))?.token ?? "";
    const app = await buildApp({ store, log: createLogger({ name: "t", level: "silent" }) });
    const holder = new BetterSqlite3(path);
    try {
      await putRelease(store, REL_OLD, 1);
      const et = await app.inject({ method: "POST", url: "/v1/enrollment-tokens", headers: bearer(owner), payload: { node_id: "edge-0" } });
      const en = await app.inject({ method: "POST", url: "/v1/nodes/enroll", headers: bearer(et.json<{ token: string }>().token), payload: { node_id: "edge-0" } });
      const cred = en.json<{ credential: string }>().credential;
      holder.prepare("begin immediate").run();
      const res = await app.inject({ method: "GET", url: "/v1/releases/latest?channel=stable", headers: bearer(cred) });
      holder.prepare("rollback").run();
      const offers = await store.db.selectFrom("node_offers").selectAll().execute();
      expect({ status: res.statusCode, code: res.statusCode >= 400 ? res.json<{ code: string }>().code : null, offers_if_200: res.statusCode === 200 ? offers.length : 1 })
        .toEqual({ status: 503, code: "STORE_BUSY", offers_if_200: 1 });
    } finally {
      holder.close();
      await app.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("review3: withdrawn releases through assignments", () => {
  it("review3: a plan's release withdrawn after the plan started is no longer offered to its started nodes (withdraw is the operator's stop button)", async () => {
    const { c, cred } = await trio();
    const created = await op(c, "POST", "/v1/rollouts", planBody());
    expect(created.statusCode, created.body).toBe(201);
    c.clock.advance(1000);
    await c.app.rollouts.scheduler.tickAll();
    const before = await op(c, "GET", "/v1/releases/latest?channel=stable", undefined, cred);
    expect(before.json<{ release_id: string }>().release_id).toBe(REL_NEW); // started: assigned the plan's release
    expect((await op(c, "POST", `/v1/releases/${REL_NEW}/withdraw`)).statusCode).toBe(200);
    const after = await op(c, "GET", "/v1/releases/latest?channel=stable", undefined, cred);
    expect(after.statusCode === 200 ? after.json<{ release_id: string }>().release_id : `status ${after.statusCode}`).not.toBe(REL_NEW);
  });
});
