/**
 * The releases area on both dialects: publish (advisory: parsed, never
 * verified), idempotence, equivocation, latest with ETag/304, history paging,
 * and the hostile publishes named.
 */
import { afterEach, expect, it } from "vitest";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { signStatement, trustedKeys } from "../../src/supplychain/index.js";
import type { ReleasePredicate } from "../../src/supplychain/index.js";
import { bearer, openTestCp } from "../helpers/cp-app.js";
import type { TestCp } from "../helpers/cp-app.js";
import { countRows } from "../helpers/cp-rows.js";
import { describeDialects } from "../helpers/databases.js";
import { fakeDigest, samplePredicate } from "../helpers/statements.js";

const key = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;

function envelopeFor(p: ReleasePredicate): { payloadType: string; payload: string; signatures: Array<{ keyid: string; sig: string }> } {
  return signStatement(p, [key]).envelope;
}

const predicate = (sequence: number, over: Partial<ReleasePredicate> = {}): ReleasePredicate => ({ ...samplePredicate(sequence), ...over });
const IMAGE = "registry.example/team/agent:1.0";

function expectProblemCode(res: { statusCode: number; body: string }, status: number, code: string): void {
  expect(res.statusCode, res.body).toBe(status);
  expect((JSON.parse(res.body) as { code: string }).code).toBe(code);
}

describeDialects("releases", (db) => {
  const open: TestCp[] = [];
  const cpOn = async (o: { location?: string; latestCacheMs?: number } = {}): Promise<TestCp> => {
    const cp = await openTestCp({ location: o.location ?? (await db.fresh()), ...(o.latestCacheMs !== undefined ? { latestCacheMs: o.latestCacheMs } : {}) });
    open.push(cp);
    return cp;
  };
  afterEach(async () => {
    for (const cp of open.splice(0)) await cp.close();
  });
  const publish = (cp: TestCp, body: Record<string, unknown>, token = cp.owner) => cp.app.inject({ method: "POST", url: "/v1/releases", headers: bearer(token), payload: body });
  const body = (p: ReleasePredicate, over: Record<string, unknown> = {}) => ({ statement: envelopeFor(p), image: IMAGE, channel: p.channel, notes: "first", ...over });

  it("publishes a release (201) with the statement's digests, and the same envelope again is 200 with the same release", async () => {
    const cp = await cpOn();
    const b = body(predicate(1));
    const first = await publish(cp, b);
    expect(first.statusCode).toBe(201);
    const rel = first.json<Record<string, unknown>>();
    expect(rel).toMatchObject({ channel: "stable", sequence: 1, image: IMAGE, image_digest: fakeDigest("a"), lock_digest: fakeDigest("b"), bundle_digest: fakeDigest("e"), lock_fingerprint: `blake3:${"c".repeat(64)}`, notes: "first", published_at: "2026-12-05T10:00:00.000Z" });
    expect(rel["release_id"]).toMatch(/^rel-[0-9a-f]{16}$/);
    expect(rel["statement"]).toEqual(b.statement);
    // The same envelope with its keys in another order is the same release (canonical JSON).
    const reordered = { signatures: b.statement.signatures, payload: b.statement.payload, payloadType: b.statement.payloadType };
    const again = await publish(cp, { ...b, statement: reordered });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(rel);
    expect(await countRows(cp.store, "releases")).toBe(1);
    const got = await cp.app.inject({ url: `/v1/releases/${String(rel["release_id"])}`, headers: bearer(cp.owner) });
    expect(got.json()).toEqual(rel);
  });

  it("attack: equivocation — a different statement at the same channel and sequence gets 409 RELEASE_CONFLICT and is not stored", async () => {
    const cp = await cpOn();
    const first = await publish(cp, body(predicate(3)));
    expect(first.statusCode).toBe(201);
    const other = await publish(cp, body(predicate(3, { lock: { digest: fakeDigest("9"), size: 1, behavioral_fingerprint: `blake3:${"d".repeat(64)}` } })));
    expect(other.statusCode).toBe(409);
    expect(other.json()).toMatchObject({ code: "RELEASE_CONFLICT" });
    expect(other.json<{ detail: string }>().detail).toContain(first.json<{ release_id: string }>().release_id);
    expect(await countRows(cp.store, "releases")).toBe(1);
  });

  it("attack: two different statements for one sequence published at once: one 201, one 409, one row", async () => {
    const location = await db.fresh();
    const cp = await cpOn({ location });
    // PostgreSQL: two servers (two pools); SQLite: one server (see identity.test.ts on one connection per process).
    const other = db.dialect === "postgres" ? await cpOn({ location }) : cp;
    const results = await Promise.all([publish(cp, body(predicate(4))), publish(other, body(predicate(4, { policy_bundle: { ...samplePredicate(4).policy_bundle, version: "9.9.9" } })), other.owner)]);
    expect(results.map((r) => r.statusCode).sort()).toEqual([201, 409]);
    expect(await countRows(cp.store, "releases")).toBe(1);
  });

  it("latest: a strong ETag, If-None-Match → 304 without a body, and a publish is visible to the next request", async () => {
    const cp = await cpOn();
    const none = await cp.app.inject({ url: "/v1/releases/latest?channel=stable", headers: bearer(cp.owner) });
    expect(none.statusCode).toBe(404);
    expect(none.json()).toMatchObject({ code: "RELEASE_NOT_FOUND" });
    const r1 = (await publish(cp, body(predicate(1)))).json<{ release_id: string }>();
    const latest = await cp.app.inject({ url: "/v1/releases/latest?channel=stable", headers: bearer(cp.owner) });
    expect(latest.statusCode).toBe(200);
    expect(latest.headers["etag"]).toBe(`"${r1.release_id}"`);
    expect(latest.json()).toMatchObject({ release_id: r1.release_id });
    const cached = await cp.app.inject({ url: "/v1/releases/latest", headers: { ...bearer(cp.owner), "if-none-match": `"${r1.release_id}"` } });
    expect(cached.statusCode).toBe(304);
    expect(cached.body).toBe("");
    expect(cached.headers["etag"]).toBe(`"${r1.release_id}"`);
    const r2 = (await publish(cp, body(predicate(2)))).json<{ release_id: string }>();
    const moved = await cp.app.inject({ url: "/v1/releases/latest", headers: { ...bearer(cp.owner), "if-none-match": `"${r1.release_id}"` } });
    expect(moved.statusCode).toBe(200);
    expect(moved.json()).toMatchObject({ release_id: r2.release_id, sequence: 2 });
    // An older sequence published late does not become the latest.
    await publish(cp, body(predicate(0 + 1, { channel: "beta" }), { channel: "beta" }));
    expect((await cp.app.inject({ url: "/v1/releases/latest", headers: bearer(cp.owner) })).json()).toMatchObject({ sequence: 2 });
  });

  if (db.dialect === "postgres") {
    it("several servers: a publish through another server shows in this one's latest after at most latestCacheMs (0: at once)", async () => {
      const location = await db.fresh();
      const a = await cpOn({ location });
      const b = await cpOn({ location, latestCacheMs: 5000 });
      const c = await cpOn({ location, latestCacheMs: 0 });
      const latestOf = async (cp: TestCp) => (await cp.app.inject({ url: "/v1/releases/latest", headers: bearer(cp.owner) })).json<{ sequence: number }>().sequence;
      await publish(a, body(predicate(1)));
      expect(await latestOf(b)).toBe(1);
      await publish(a, body(predicate(2)));
      expect(await latestOf(c)).toBe(2);
      expect(await latestOf(b)).toBe(1); // cached in b, within its 5 s
      b.clock.advance(5000);
      expect(await latestOf(b)).toBe(2);
    });
  }

  it("standby: stored, listed and shown with standby true, but never the channel's latest — for operators, for unassigned nodes, through the cache and its ETag", async () => {
    const cp = await cpOn({ latestCacheMs: 60_000 });
    const node = await cp.enroll("edge-standby");
    const live = (await publish(cp, body(predicate(1)))).json<{ release_id: string; standby: boolean }>();
    expect(live.standby).toBe(false);
    const latest = async (token: string, etag?: string) => cp.app.inject({ url: "/v1/releases/latest?channel=stable", headers: { ...bearer(token), ...(etag ? { "if-none-match": etag } : {}) } });
    // Both caches filled with the live release before the standby one arrives.
    expect((await latest(cp.owner)).headers.etag).toBe(`"${live.release_id}"`);
    expect((await latest(node)).headers.etag).toBe(`"${live.release_id}"`);
    const sb = await publish(cp, body(predicate(5), { standby: true }));
    expect(sb.statusCode, sb.body).toBe(201);
    const standby = sb.json<{ release_id: string; standby: boolean; sequence: number }>();
    expect(standby).toMatchObject({ standby: true, sequence: 5 });
    for (const token of [cp.owner, node]) {
      const r = await latest(token);
      expect(r.json<{ release_id: string }>().release_id).toBe(live.release_id);
      expect((await latest(token, `"${live.release_id}"`)).statusCode).toBe(304);
    }
    const page = (await cp.app.inject({ url: "/v1/releases?channel=stable", headers: bearer(cp.owner) })).json<{ releases: Array<{ release_id: string; standby: boolean }> }>();
    expect(page.releases.map((r) => [r.release_id, r.standby])).toEqual([[standby.release_id, true], [live.release_id, false]]);
    expect((await cp.app.inject({ url: `/v1/releases/${standby.release_id}`, headers: bearer(cp.owner) })).json()).toMatchObject({ standby: true });
    // A later live release is the latest again (the standby one below or above it never is).
    const next = (await publish(cp, body(predicate(6)))).json<{ release_id: string }>();
    expect((await latest(node)).json<{ release_id: string }>().release_id).toBe(next.release_id);
  });

  it("standby is part of what was published: the same statement again with the other standby value is 409 RELEASE_CONFLICT naming standby, nothing changes; another statement at a standby's sequence is equivocation as always", async () => {
    const cp = await cpOn();
    const b = body(predicate(4), { standby: true });
    expect((await publish(cp, b)).statusCode).toBe(201);
    expect((await publish(cp, b)).statusCode).toBe(200);
    const flipped = await publish(cp, { ...b, standby: false });
    expect(flipped.statusCode).toBe(409);
    expect(flipped.json()).toMatchObject({ code: "RELEASE_CONFLICT" });
    expect(flipped.json<{ detail: string }>().detail).toMatch(/^standby: /);
    const stored = (await cp.app.inject({ url: "/v1/releases", headers: bearer(cp.owner) })).json<{ releases: Array<{ standby: boolean }> }>();
    expect(stored.releases.map((r) => r.standby)).toEqual([true]);
    const other = await publish(cp, body(predicate(4, { lock: { digest: fakeDigest("9"), size: 1, behavioral_fingerprint: `blake3:${"d".repeat(64)}` } }), { standby: true }));
    expect(other.statusCode).toBe(409);
    expect(other.json()).toMatchObject({ code: "RELEASE_CONFLICT" });
    expect(await countRows(cp.store, "releases")).toBe(1);
    expect((await cp.app.inject({ url: "/v1/releases/latest?channel=stable", headers: bearer(cp.owner) })).statusCode).toBe(404);
  });

  it("review3: re-publishing a withdrawn release's exact statement is 409 RELEASE_CONFLICT (re-sign at a new sequence), not a 500; the release stays withdrawn", async () => {
    const cp = await cpOn();
    const b = body(predicate(1));
    const first = await publish(cp, b);
    expect(first.statusCode, first.body).toBe(201);
    const id = first.json<{ release_id: string }>().release_id;
    expect((await cp.app.inject({ method: "POST", url: `/v1/releases/${id}/withdraw`, headers: bearer(cp.owner) })).statusCode).toBe(200);
    const again = await publish(cp, b);
    expectProblemCode(again, 409, "RELEASE_CONFLICT");
    expect(again.json<{ detail: string }>().detail).toMatch(/was withdrawn at .*re-sign it at a new sequence/);
    const row = await cp.store.db.selectFrom("releases").select("withdrawn_at").where("release_id", "=", id).executeTakeFirst();
    expect(row?.withdrawn_at).not.toBeNull();
  });

  it("a node credential polls latest (release:read) and gets the 304 too", async () => {
    const cp = await cpOn();
    const cred = await cp.enroll("edge-1");
    const r1 = (await publish(cp, body(predicate(1)))).json<{ release_id: string }>();
    const res = await cp.app.inject({ url: "/v1/releases/latest", headers: { ...bearer(cred), "if-none-match": `W/"${r1.release_id}", "x"` } });
    expect(res.statusCode).toBe(304);
  });

  it("history per channel, newest sequence first, with cursor paging", async () => {
    const cp = await cpOn();
    for (const s of [1, 2, 3, 4, 5]) expect((await publish(cp, body(predicate(s)))).statusCode).toBe(201);
    expect((await publish(cp, body(predicate(9, { channel: "beta" }), { channel: "beta" }))).statusCode).toBe(201);
    const seen: number[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 5; i++) {
      const url: string = `/v1/releases?channel=stable&limit=2${cursor ? `&cursor=${cursor}` : ""}`;
      const page = (await cp.app.inject({ url, headers: bearer(cp.owner) })).json<{ releases: Array<{ sequence: number }>; next_cursor: string | null }>();
      seen.push(...page.releases.map((r) => r.sequence));
      cursor = page.next_cursor;
      if (cursor === null) break;
    }
    expect(seen).toEqual([5, 4, 3, 2, 1]);
    const all = (await cp.app.inject({ url: "/v1/releases", headers: bearer(cp.owner) })).json<{ releases: Array<{ channel: string; sequence: number }> }>();
    expect(all.releases.map((r) => `${r.channel}:${r.sequence}`)).toEqual(["beta:9", "stable:5", "stable:4", "stable:3", "stable:2", "stable:1"]);
  });

  it.each([
    ["an unknown field", (b: Record<string, unknown>) => ({ ...b, force: true }), 400, "REQUEST_INVALID", "force: unknown field"],
    ["a wrong type", (b: Record<string, unknown>) => ({ ...b, notes: 5 }), 400, "REQUEST_INVALID", "notes:"],
    ["a payload that is not a release statement", (b: Record<string, unknown>) => ({ ...b, statement: { ...(b["statement"] as object), payload: Buffer.from('{"_type":"x"}').toString("base64") } }), 400, "RELEASE_STATEMENT_INVALID", "statement.payload"],
    ["a payload type that is not in-toto", (b: Record<string, unknown>) => ({ ...b, statement: { ...(b["statement"] as object), payloadType: "text/plain" } }), 400, "RELEASE_STATEMENT_INVALID", "payloadType"],
    ["a channel other than the statement's", (b: Record<string, unknown>) => ({ ...b, channel: "beta" }), 400, "RELEASE_CHANNEL_MISMATCH", "channel"],
    ["an image reference whose digest contradicts the statement", (b: Record<string, unknown>) => ({ ...b, image: `registry.example/team/agent@${fakeDigest("f")}` }), 400, "RELEASE_IMAGE_MISMATCH", fakeDigest("f")],
    ["an image that is not a reference", (b: Record<string, unknown>) => ({ ...b, image: "UPPER CASE!" }), 400, "REQUEST_INVALID", "image:"],
  ])("attack: a publish with %s is refused, nothing stored", async (_what, mutate, status, code, inDetail) => {
    const cp = await cpOn();
    const res = await publish(cp, mutate(body(predicate(1))));
    expect(res.statusCode).toBe(status);
    expect(res.json()).toMatchObject({ code });
    expect(res.json<{ detail: string }>().detail).toContain(inDetail);
    expect(await countRows(cp.store, "releases")).toBe(0);
  });

  it("attack: a publish whose image lives in another repository than the statement's (an attacker's registry) → 400 naming image, nothing stored", async () => {
    const cp = await cpOn();
    for (const image of [`evil.example/loot/agent@${fakeDigest("a")}`, "registry.example/team/agent2:1.0", "evil.example/team/agent:1.0"]) {
      const res = await publish(cp, body(predicate(1), { image }));
      expect(res.statusCode, image).toBe(400);
      expect(res.json<{ detail: string }>().detail).toContain("image");
    }
    expect(await countRows(cp.store, "releases")).toBe(0);
  });

  it("attack: a publisher squats a channel at sequence 2^53-1 (or pre-empts the real statement's sequence); an owner withdraws it (POST /v1/releases/:id/withdraw), latest skips it and the real statement publishes at that sequence", async () => {
    const cp = await cpOn();
    const publisher = await cp.tokenFor("publisher");
    const squat = await publish(cp, body(predicate(Number.MAX_SAFE_INTEGER)), publisher);
    expect(squat.statusCode).toBe(201);
    const squatId = squat.json<{ release_id: string }>().release_id;
    const preempt = await publish(cp, body(predicate(3, { policy_bundle: { ...samplePredicate(3).policy_bundle, version: "6.6.6" } })), publisher);
    expect(preempt.statusCode).toBe(201);
    expect((await publish(cp, body(predicate(3)))).statusCode).toBe(409);
    // Only an owner withdraws (token:manage): a publisher cannot un-publish the real release either.
    expect((await cp.app.inject({ method: "POST", url: `/v1/releases/${squatId}/withdraw`, headers: bearer(publisher) })).statusCode).toBe(403);
    for (const id of [squatId, preempt.json<{ release_id: string }>().release_id]) {
      const w = await cp.app.inject({ method: "POST", url: `/v1/releases/${id}/withdraw`, headers: bearer(cp.owner) });
      expect(w.statusCode).toBe(200);
      expect(w.json<{ withdrawn_at: string | null }>().withdrawn_at).not.toBeNull();
    }
    expect((await publish(cp, body(predicate(3)))).statusCode).toBe(201);
    const latest = await cp.app.inject({ url: "/v1/releases/latest?channel=stable", headers: bearer(cp.owner) });
    expect(latest.json<{ sequence: number }>().sequence).toBe(3);
    expect((await cp.app.inject({ method: "POST", url: "/v1/releases/rel-0123456789abcdef/withdraw", headers: bearer(cp.owner) })).statusCode).toBe(404);
  });

  it("attack: with --release-key configured, a publisher token without the signing key cannot freeze a channel with a junk-signed statement at sequence 2^53-1, nor pre-empt the real one (422 RELEASE_SIGNATURE_UNTRUSTED)", async () => {
    const pub = createPublicKey(key);
    const cp = await openTestCp({ location: await db.fresh(), releaseTrust: { keys: trustedKeys([pub]), threshold: 1 } });
    open.push(cp);
    const publisher = await cp.tokenFor("publisher");
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    const junk = envelopeFor(predicate(Number.MAX_SAFE_INTEGER));
    const attempts = [
      { ...junk, signatures: [{ keyid: "nobody", sig: "AAAA" }] },
      signStatement(predicate(Number.MAX_SAFE_INTEGER), [other]).envelope,
      signStatement(predicate(3, { policy_bundle: { ...samplePredicate(3).policy_bundle, version: "6.6.6" } }), [other]).envelope,
    ];
    for (const statement of attempts) {
      const r = await publish(cp, { statement, image: IMAGE, channel: "stable" }, publisher);
      expect(r.statusCode).toBe(422);
      expect(r.json()).toMatchObject({ code: "RELEASE_SIGNATURE_UNTRUSTED" });
    }
    expect(await countRows(cp.store, "releases")).toBe(0);
    expect((await publish(cp, body(predicate(2)), publisher)).statusCode).toBe(201);
    expect((await publish(cp, body(predicate(3)), publisher)).statusCode).toBe(201);
    const latest = await cp.app.inject({ url: "/v1/releases/latest?channel=stable", headers: bearer(cp.owner) });
    expect(latest.json<{ sequence: number }>().sequence).toBe(3);
  });

  it("an image reference carrying the statement's own digest is accepted", async () => {
    const cp = await cpOn();
    expect((await publish(cp, body(predicate(1), { image: `registry.example/team/agent@${fakeDigest("a")}` }))).statusCode).toBe(201);
  });

  it("attack: a viewer cannot publish (403) and an unknown release id is 404 RELEASE_NOT_FOUND; a malformed one is 400", async () => {
    const cp = await cpOn();
    const res = await publish(cp, body(predicate(1)), await cp.tokenFor("viewer"));
    expect(res.statusCode).toBe(403);
    expect((await cp.app.inject({ url: "/v1/releases/rel-0123456789abcdef", headers: bearer(cp.owner) })).json()).toMatchObject({ status: 404, code: "RELEASE_NOT_FOUND" });
    const bad = await cp.app.inject({ url: "/v1/releases/nope", headers: bearer(cp.owner) });
    expect(bad.statusCode).toBe(400);
    expect(bad.json<{ detail: string }>().detail).toContain("release_id");
    const badQuery = await cp.app.inject({ url: "/v1/releases?cursor=zzz", headers: bearer(cp.owner) });
    expect(badQuery.json()).toMatchObject({ status: 400, code: "REQUEST_INVALID" });
    const unknownParam = await cp.app.inject({ url: "/v1/releases/latest?channel=stable&x=1", headers: bearer(cp.owner) });
    expect(unknownParam.json()).toMatchObject({ status: 400, code: "REQUEST_INVALID" });
  });
});
