/**
 * POST /v1/events and GET /v1/events on SQLite and PostgreSQL: dedup on
 * event_id (across batches and inside one), the whole batch or nothing,
 * hostile batches refused naming the field with nothing written, queries by
 * node, type and time, newest first, with cursor paging. PostgreSQL's side is
 * read back with psql.
 */
import { expect, it } from "vitest";
import type { EventPage } from "../../src/cpapi/index.js";
import { bearer, perTestCp } from "../helpers/cp-app.js";
import type { TestCp } from "../helpers/cp-app.js";
import type { Injected } from "../helpers/cp-fleet.js";
import { enrollNode, expectProblem, rowCount } from "../helpers/cp-fleet.js";
import { describeDialects, psql } from "../helpers/databases.js";

const FP = `blake3:${"2".repeat(64)}`;

function ev(id: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return { event_id: id, event_type: "ai.deployment.lifecycle", node_id: "edge-1", timestamp: "2026-12-05T10:00:00Z", ...over };
}

describeDialects("events", (db) => {
  const { open, url: dbUrl } = perTestCp(db);
  const post = (c: TestCp, token: string, events: unknown): Promise<Injected> => c.app.inject({ method: "POST", url: "/v1/events", headers: bearer(token), payload: { events } as Record<string, unknown> });

  it("ingests a batch, answers {received, inserted, deduped}, and a resent event_id is ignored (psql sees each once)", async () => {
    const c = await open();
    const cred = await enrollNode(c, "edge-1");
    const first = await post(c, cred, [ev("edge-1:g:1", { lock_fingerprint: FP, release_id: "rel-0000000000000001", attributes: { phase: "polled", n: 1 } }), ev("edge-1:g:2")]);
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toEqual({ received: 2, inserted: 2, deduped: 0 });
    const again = await post(c, cred, [ev("edge-1:g:2"), ev("edge-1:g:3"), ev("edge-1:g:1", { event_type: "changed" })]);
    expect(again.json()).toEqual({ received: 3, inserted: 1, deduped: 2 });
    expect(await rowCount(c.store, "events")).toBe(3);
    const page = (await c.app.inject({ method: "GET", url: "/v1/events", headers: bearer(c.owner) })).json<EventPage>();
    expect(page.events.map((e) => e.event_id)).toEqual(["edge-1:g:3", "edge-1:g:2", "edge-1:g:1"]);
    expect(page.events[2]).toMatchObject({ event_type: "ai.deployment.lifecycle", lock_fingerprint: FP, release_id: "rel-0000000000000001", attributes: { phase: "polled", n: 1 }, timestamp: "2026-12-05T10:00:00.000Z" });
    if (db.dialect === "postgres") {
      expect(psql(db.cluster(), dbUrl(), "SELECT event_id, event_type FROM events ORDER BY ingest_seq")).toEqual([
        ["edge-1:g:1", "ai.deployment.lifecycle"],
        ["edge-1:g:2", "ai.deployment.lifecycle"],
        ["edge-1:g:3", "ai.deployment.lifecycle"],
      ]);
    }
  });

  it("attack: a node pre-claims another node's event ids (<node_id>:<gen>:<seq>, predictable): the other node's real events are still stored", async () => {
    const c = await open();
    const a = await enrollNode(c, "node-a");
    const b = await enrollNode(c, "node-b");
    const squat = await post(c, a, [ev("node-b:g1:1", { node_id: "node-a" }), ev("node-b:g1:2", { node_id: "node-a" })]);
    expect(squat.json()).toEqual({ received: 2, inserted: 2, deduped: 0 });
    const real = await post(c, b, [ev("node-b:g1:1", { node_id: "node-b", event_type: "ai.policy.deny" }), ev("node-b:g1:2", { node_id: "node-b", event_type: "ai.policy.deny" })]);
    expect(real.json()).toEqual({ received: 2, inserted: 2, deduped: 0 });
    // node-b's own resend is still deduped: the key is (node_id, event_id).
    expect((await post(c, b, [ev("node-b:g1:1", { node_id: "node-b" })])).json()).toEqual({ received: 1, inserted: 0, deduped: 1 });
    const forB = (await c.app.inject({ url: "/v1/events?node_id=node-b", headers: bearer(c.owner) })).json<EventPage>();
    expect(forB.events.map((e) => [e.event_id, e.event_type])).toEqual([
      ["node-b:g1:2", "ai.policy.deny"],
      ["node-b:g1:1", "ai.policy.deny"],
    ]);
  });

  it("attack: an event_id (or wal id) with a control character (U+0000, U+001F, U+007F) → 400 naming events[i].event_id, nothing written, never a 500", async () => {
    const c = await open();
    const cred = await enrollNode(c, "edge-1");
    for (const bad of ["a\\u0000b", "a\\u001fb", "a\\u007fb", "line\\nforged"]) {
      const r = await c.app.inject({ method: "POST", url: "/v1/events", headers: { ...bearer(cred), "content-type": "application/json" }, payload: `{"events":[{"event_id":"${bad}","event_type":"t","node_id":"edge-1","timestamp":"2026-12-05T10:00:00Z"}]}` });
      expect(r.statusCode, bad).toBe(400);
      expect(r.json<{ detail: string }>().detail).toContain("events[0].event_id");
    }
    expect(await rowCount(c.store, "events")).toBe(0);
  });

  it("attack: a body with invalid UTF-8 → 400, not decoded to U+FFFD (two distinct event ids would collapse into one)", async () => {
    const c = await open();
    const cred = await enrollNode(c, "edge-1");
    const raw = (b: number) => Buffer.concat([Buffer.from('{"events":[{"event_id":"id-'), Buffer.from([b]), Buffer.from('","event_type":"t","node_id":"edge-1","timestamp":"2026-12-05T10:00:00Z"}]}')]);
    for (const b of [0xff, 0xfe]) {
      const r = await c.app.inject({ method: "POST", url: "/v1/events", headers: { ...bearer(cred), "content-type": "application/json" }, payload: raw(b) });
      expect(r.statusCode).toBe(400);
      expect(r.json<{ detail: string }>().detail).toMatch(/UTF-8/);
    }
    expect(await rowCount(c.store, "events")).toBe(0);
  });

  it("attack: a timestamp outside years 0000–9999 in UTC (9999-12-31T23:59:59-23:59 is year 10000) → 400 naming it, so every stored time sorts as text", async () => {
    const c = await open();
    const cred = await enrollNode(c, "edge-1");
    for (const t of ["9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+00:01"]) {
      const r = await post(c, cred, [ev("t1", { timestamp: t })]);
      expect(r.statusCode, t).toBe(400);
      expect(r.json<{ detail: string }>().detail).toContain("events[0].timestamp");
    }
    // Inside year 9999 in UTC but far in the future: refused since the 24 h bound (the next test).
    expect((await post(c, cred, [ev("t2", { timestamp: "9999-12-31T23:59:59+01:00" })])).statusCode).toBe(400);
    const q = (await c.app.inject({ url: "/v1/events?until=2026-12-06T00:00:00Z", headers: bearer(c.owner) })).json<EventPage>();
    expect(q.count).toBe(0);
  });

  it("review: an event timestamp far in the future (more than 24 h after the control plane's time) → 400 naming events[i].timestamp, nothing of the batch written; 23 h ahead and any past time are taken", async () => {
    const c = await open();
    const cred = await enrollNode(c, "edge-1");
    const now = c.clock.now();
    const at = (ms: number): string => new Date(ms).toISOString();
    for (const t of [at(now + 24 * 3_600_000 + 1000), "2099-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]) {
      const r = await post(c, cred, [ev("ok-1"), ev("far", { timestamp: t })]);
      expectProblem(r, 400, "REQUEST_INVALID", "events[1].timestamp");
      expect(r.json<{ detail: string }>().detail).toContain("24 hours");
    }
    expect(await rowCount(c.store, "events")).toBe(0);
    const r = await post(c, cred, [ev("ok-1"), ev("soon", { timestamp: at(now + 23 * 3_600_000) }), ev("old", { timestamp: "2001-01-01T00:00:00Z" })]);
    expect(r.json()).toEqual({ received: 3, inserted: 3, deduped: 0 });
    // The bound moves with the control plane's clock: a day later, the same far time is nearer.
    c.clock.advance(2 * 24 * 3_600_000);
    expect((await post(c, cred, [ev("later", { timestamp: at(now + 25 * 3_600_000) })])).statusCode).toBe(200);
  });

  it("the same event_id twice in one batch counts once inserted and once deduped", async () => {
    const c = await open();
    const r = await post(c, c.owner, [ev("dup"), ev("dup", { event_type: "other" }), ev("solo")]);
    expect(r.json()).toEqual({ received: 3, inserted: 2, deduped: 1 });
    expect(await rowCount(c.store, "events")).toBe(2);
  });

  it("a resend racing the original (overlapping batches in flight at once) stores each event once, and the counts add up", async () => {
    const c = await open();
    const batches = Array.from({ length: 6 }, (_, k) => Array.from({ length: 40 }, (_, i) => ev(`race-${k * 20 + i}`)));
    const answers = await Promise.all(batches.map(async (b) => (await post(c, c.owner, b)).json<{ received: number; inserted: number; deduped: number }>()));
    const unique = new Set(batches.flat().map((e) => String(e["event_id"]))).size;
    expect(answers.reduce((n, a) => n + a.inserted, 0)).toBe(unique);
    expect(answers.reduce((n, a) => n + a.deduped, 0)).toBe(6 * 40 - unique);
    expect(await rowCount(c.store, "events")).toBe(unique);
  });

  it("counts cp_events_ingested_total by result", async () => {
    const c = await open();
    await post(c, c.owner, [ev("a"), ev("b")]);
    await post(c, c.owner, [ev("a"), ev("c")]);
    const metrics = (await c.app.inject({ method: "GET", url: "/metrics" })).body;
    expect(metrics).toMatch(/^cp_events_ingested_total\{result="inserted"\} 3$/m);
    expect(metrics).toMatch(/^cp_events_ingested_total\{result="deduped"\} 1$/m);
  });

  it("attack: a node reports events as another node → 403 NODE_IDENTITY_MISMATCH naming the index, nothing of the batch written", async () => {
    const c = await open();
    const cred = await enrollNode(c, "edge-1");
    await enrollNode(c, "edge-2");
    expectProblem(await post(c, cred, [ev("e1"), ev("e2"), ev("e3", { node_id: "edge-2" })]), 403, "NODE_IDENTITY_MISMATCH", "events[2].node_id");
    expect(await rowCount(c.store, "events")).toBe(0);
    // Operators may send any node's events (e.g. a relay); the node itself only its own.
    expect((await post(c, c.owner, [ev("e3", { node_id: "edge-2" })])).json()).toEqual({ received: 1, inserted: 1, deduped: 0 });
  });

  it("hostile batch: an unknown field → 400 naming events[i].field, nothing written", async () => {
    const c = await open();
    expectProblem(await post(c, c.owner, [ev("ok"), ev("x", { colour: "red" })]), 400, "REQUEST_INVALID", "events[1].colour: unknown field");
    expectProblem(await c.app.inject({ method: "POST", url: "/v1/events", headers: bearer(c.owner), payload: { events: [ev("ok")], extra: 1 } }), 400, "REQUEST_INVALID", "extra: unknown field");
    expect(await rowCount(c.store, "events")).toBe(0);
  });

  it("hostile batch: wrong types → 400 naming the field, nothing written", async () => {
    const c = await open();
    expectProblem(await post(c, c.owner, [ev("ok"), ev("t", { timestamp: 1733392800 })]), 400, "REQUEST_INVALID", "events[1].timestamp");
    expectProblem(await post(c, c.owner, [ev("ok"), ev("t", { timestamp: "yesterday" })]), 400, "REQUEST_INVALID", "events[1].timestamp");
    expectProblem(await post(c, c.owner, [ev("a", { attributes: ["not", "an", "object"] })]), 400, "REQUEST_INVALID", "events[0].attributes");
    expectProblem(await post(c, c.owner, [ev("a", { lock_fingerprint: "sha256:00" })]), 400, "REQUEST_INVALID", "events[0].lock_fingerprint");
    expectProblem(await post(c, c.owner, "all of them"), 400, "REQUEST_INVALID", "events");
    expectProblem(await post(c, c.owner, []), 400, "REQUEST_INVALID", "events");
    expect(await rowCount(c.store, "events")).toBe(0);
  });

  it("hostile batch: 1001 events → 400 naming events, nothing written", async () => {
    const c = await open();
    const batch = Array.from({ length: 1001 }, (_, i) => ev(`b-${i}`));
    expectProblem(await post(c, c.owner, batch), 400, "REQUEST_INVALID", "events");
    expect(await rowCount(c.store, "events")).toBe(0);
    // 1000 is the limit, not beyond it.
    expect((await post(c, c.owner, batch.slice(0, 1000))).json()).toEqual({ received: 1000, inserted: 1000, deduped: 0 });
  });

  it("hostile batch: an oversized body (over the 4 MiB limit) → 413 REQUEST_TOO_LARGE, nothing written", async () => {
    const c = await open();
    const big = Array.from({ length: 300 }, (_, i) => ev(`big-${i}`, { attributes: { blob: "x".repeat(15 * 1024) } }));
    expectProblem(await post(c, c.owner, big), 413, "REQUEST_TOO_LARGE");
    expect(await rowCount(c.store, "events")).toBe(0);
  });

  it("hostile batch: an oversized attribute (over 16 KiB as JSON) → 400 naming events[i].attributes, nothing written", async () => {
    const c = await open();
    expectProblem(await post(c, c.owner, [ev("small", { attributes: { a: "x" } }), ev("big", { attributes: { blob: "x".repeat(16 * 1024) } })]), 400, "REQUEST_INVALID", "events[1].attributes");
    expect(await rowCount(c.store, "events")).toBe(0);
    expect((await post(c, c.owner, [ev("fits", { attributes: { blob: "x".repeat(16 * 1024 - 20) } })])).json()).toMatchObject({ inserted: 1 });
  });

  it("queries by node, type and time range, newest first, with cursor paging", async () => {
    const c = await open();
    const batch = Array.from({ length: 30 }, (_, i) =>
      ev(`q-${i}`, { node_id: i % 3 === 0 ? "edge-9" : "edge-1", event_type: i % 2 === 0 ? "ai.policy.decision" : "ai.deployment.lifecycle", timestamp: new Date(Date.parse("2026-12-05T10:00:00Z") + i * 60_000).toISOString() }),
    );
    await post(c, c.owner, batch);
    const get = async (q: string): Promise<EventPage> => {
      const r = await c.app.inject({ method: "GET", url: `/v1/events?${q}`, headers: bearer(c.owner) });
      expect(r.statusCode, r.body).toBe(200);
      return r.json<EventPage>();
    };
    const ids = (p: EventPage): string[] => p.events.map((e) => e.event_id);
    expect(ids(await get("node_id=edge-9"))).toEqual([27, 24, 21, 18, 15, 12, 9, 6, 3, 0].map((i) => `q-${i}`));
    expect(ids(await get("node_id=edge-9&event_type=ai.policy.decision"))).toEqual(["q-24", "q-18", "q-12", "q-6", "q-0"]);
    // since inclusive, until exclusive; any offset is accepted and compared in UTC.
    expect(ids(await get(`since=${encodeURIComponent("2026-12-05T11:05:00+01:00")}&until=2026-12-05T10:08:00Z`))).toEqual(["q-7", "q-6", "q-5"]);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const p: EventPage = await get(`node_id=edge-1&limit=4${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      expect(p.count).toBe(p.events.length);
      seen.push(...ids(p));
      cursor = p.next_cursor;
    } while (cursor !== null);
    expect(seen).toEqual(batch.filter((_, i) => i % 3 !== 0).map((e) => String(e["event_id"])).reverse());
  });

  it("GET /v1/events refuses a forged cursor, a bad time and an unknown parameter; a node may not read events", async () => {
    const c = await open();
    const cred = await enrollNode(c, "edge-1");
    const get = (q: string, token = c.owner): Promise<Injected> => c.app.inject({ method: "GET", url: `/v1/events?${q}`, headers: bearer(token) });
    expectProblem(await get(`cursor=${Buffer.from("s-1").toString("base64url")}`), 400, "REQUEST_INVALID", "cursor");
    expectProblem(await get("since=2026-13-01T00:00:00Z"), 400, "REQUEST_INVALID", "since");
    expectProblem(await get("limit=1001"), 400, "REQUEST_INVALID", "limit");
    expectProblem(await get("colour=red"), 400, "REQUEST_INVALID", "colour");
    expectProblem(await get("", cred), 403, "PERMISSION_DENIED");
  });
});
