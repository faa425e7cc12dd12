/**
 * Identity on both dialects: the bootstrap owner token, operator tokens
 * (expiry, revocation), enrollment tokens (single use, pinned node id,
 * concurrent spends) and node credentials, with the hostile cases named.
 */
import { afterEach, describe, expect, it } from "vitest";
import { sql } from "kysely";
import type { FastifyRequest, FastifyReply } from "fastify";
import { authHook, bootstrapOwnerToken, openStore, revokeOperatorToken } from "../../src/orchestrator/index.js";
import { bearer, openTestCp } from "../helpers/cp-app.js";
import type { TestCp } from "../helpers/cp-app.js";
import { countRows } from "../helpers/cp-rows.js";
import { describeDialects } from "../helpers/databases.js";

describeDialects("identity", (db) => {
  const open: TestCp[] = [];
  const cpOn = async (location?: string, o: { bodyLimit?: number } = {}): Promise<TestCp> => {
    const cp = await openTestCp({ location: location ?? (await db.fresh()), ...o });
    open.push(cp);
    return cp;
  };
  afterEach(async () => {
    for (const cp of open.splice(0)) await cp.close();
  });

  const post = (cp: TestCp, url: string, token: string | undefined, payload: unknown) =>
    cp.app.inject({ method: "POST", url, headers: token === undefined ? {} : bearer(token), payload: payload as Record<string, unknown> });

  it("the bootstrap token is an owner token made once; secrets are stored only as SHA-256", async () => {
    const cp = await cpOn();
    expect(await bootstrapOwnerToken(cp.store, cp.clock)).toBeUndefined();
    const res = await post(cp, "/v1/tokens", cp.owner, { role: "viewer", name: "ci" });
    expect(res.statusCode).toBe(201);
    const created = res.json<{ token: string; token_id: string; role: string; expires_at: string | null }>();
    expect(created).toMatchObject({ role: "viewer", name: "ci", expires_at: null });
    const rows = await cp.store.db.selectFrom("tokens").selectAll().execute();
    expect(rows).toHaveLength(2);
    for (const r of rows) {
      expect(r.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(JSON.stringify(r)).not.toContain(created.token.slice(21));
      expect(JSON.stringify(r)).not.toContain(cp.owner.slice(21));
    }
  });

  it("two servers bootstrapping the same empty store at once make exactly one owner token", async () => {
    const location = await db.fresh();
    const first = await cpOn(location); // migrates and bootstraps
    await first.store.db.deleteFrom("tokens").execute();
    // PostgreSQL: two pools (two servers). SQLite: better-sqlite3 waits for a lock synchronously, so two
    // connections in ONE process would stall each other; there the race is between requests on one connection.
    const a = await openStore(location);
    const b = db.dialect === "postgres" ? await openStore(location) : a;
    try {
      const made = await Promise.all([bootstrapOwnerToken(a, first.clock), bootstrapOwnerToken(b, first.clock)]);
      expect(made.filter((t) => t !== undefined)).toHaveLength(1);
      expect(await countRows(first.store, "tokens")).toBe(1);
    } finally {
      await a.close();
      if (b !== a) await b.close();
    }
  });

  it("attack: an expired operator token gets 401 TOKEN_EXPIRED", async () => {
    const cp = await cpOn();
    const t = await cp.tokenFor("owner", { ttl_seconds: 60 });
    expect((await post(cp, "/v1/enrollment-tokens", t, {})).statusCode).toBe(201);
    cp.clock.advance(60_000);
    const res = await post(cp, "/v1/enrollment-tokens", t, {});
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ code: "TOKEN_EXPIRED" });
  });

  it("attack: a token expiring while its lookup is cached is refused at its expiry, not a cache lifetime later", async () => {
    const cp = await cpOn();
    const t = await cp.tokenFor("owner", { ttl_seconds: 60 });
    cp.clock.advance(59_500);
    expect((await post(cp, "/v1/enrollment-tokens", t, {})).statusCode).toBe(201);
    cp.clock.advance(500);
    expect((await post(cp, "/v1/enrollment-tokens", t, {})).json()).toMatchObject({ status: 401, code: "TOKEN_EXPIRED" });
  });

  it("a revocation made in the store takes effect within the auth cache lifetime (1 s)", async () => {
    const cp = await cpOn();
    const t = await cp.tokenFor("owner");
    expect((await post(cp, "/v1/enrollment-tokens", t, {})).statusCode).toBe(201);
    await revokeOperatorToken(cp.store, cp.clock, t.split("_")[1] ?? "");
    cp.clock.advance(1000);
    expect((await post(cp, "/v1/enrollment-tokens", t, {})).json()).toMatchObject({ status: 401, code: "TOKEN_REVOKED" });
  });

  it("attack: incident response — an owner revokes a leaked operator token (DELETE /v1/tokens/:id) and a node credential (DELETE /v1/nodes/:id/credential); both get 401 TOKEN_REVOKED at once on this server", async () => {
    const cp = await cpOn();
    const leaked = await cp.tokenFor("publisher");
    const id = leaked.split("_")[1] ?? "";
    const cred = await cp.enroll("edge-1");
    // Both work, and are now in this server's auth cache.
    expect((await cp.app.inject({ url: "/v1/releases", headers: bearer(leaked) })).statusCode).toBe(200);
    expect((await cp.app.inject({ url: "/v1/releases", headers: bearer(cred) })).statusCode).toBe(200);
    const list = await cp.app.inject({ url: "/v1/tokens", headers: bearer(cp.owner) });
    expect(list.statusCode).toBe(200);
    expect(list.json<{ tokens: { token_id: string; revoked_at: null }[] }>().tokens.find((t) => t.token_id === id)).toMatchObject({ role: "publisher", revoked_at: null });
    expect(list.body).not.toContain(leaked.slice(-64));
    expect(list.body).not.toMatch(/"hash"/);
    // A publisher may neither list nor revoke (token:manage is the owner's).
    expect((await cp.app.inject({ method: "DELETE", url: `/v1/tokens/${id}`, headers: bearer(leaked) })).statusCode).toBe(403);
    const rev = await cp.app.inject({ method: "DELETE", url: `/v1/tokens/${id}`, headers: bearer(cp.owner) });
    expect(rev.statusCode).toBe(200);
    expect(rev.json<{ revoked_at: string | null }>().revoked_at).not.toBeNull();
    const rn = await cp.app.inject({ method: "DELETE", url: "/v1/nodes/edge-1/credential", headers: bearer(cp.owner) });
    expect(rn.json()).toEqual({ node_id: "edge-1", revoked: 1 });
    // No clock advance: the revoking server dropped its cached lookups.
    expect((await cp.app.inject({ url: "/v1/releases", headers: bearer(leaked) })).json()).toMatchObject({ status: 401, code: "TOKEN_REVOKED" });
    expect((await cp.app.inject({ url: "/v1/releases", headers: bearer(cred) })).json()).toMatchObject({ status: 401, code: "TOKEN_REVOKED" });
    expect((await cp.app.inject({ method: "DELETE", url: "/v1/tokens/0123456789abcdef", headers: bearer(cp.owner) })).json()).toMatchObject({ status: 404, code: "CP_TOKEN_NOT_FOUND" });
    expect((await cp.app.inject({ method: "DELETE", url: "/v1/nodes/nope/credential", headers: bearer(cp.owner) })).json()).toMatchObject({ status: 404, code: "NODE_NOT_FOUND" });
    expect((await cp.app.inject({ method: "DELETE", url: "/v1/tokens/not-an-id", headers: bearer(cp.owner) })).statusCode).toBe(400);
  });

  it("attack: a revoked operator token gets 401 TOKEN_REVOKED", async () => {
    const cp = await cpOn();
    const t = await cp.tokenFor("owner");
    const id = t.split("_")[1] ?? "";
    expect(await revokeOperatorToken(cp.store, cp.clock, id)).toBe(true);
    const res = await post(cp, "/v1/tokens", t, { role: "viewer", name: "x" });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ code: "TOKEN_REVOKED" });
  });

  it("attack: a token whose secret is altered (right id, wrong secret) gets 401 TOKEN_INVALID", async () => {
    const cp = await cpOn();
    const forged = cp.owner.slice(0, -1) + (cp.owner.endsWith("0") ? "1" : "0");
    const res = await post(cp, "/v1/tokens", forged, { role: "viewer", name: "x" });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ code: "TOKEN_INVALID" });
  });

  describe("hostile bodies on POST /v1/tokens: 400 naming the field, nothing written", () => {
    it.each([
      ["an unknown field", { role: "viewer", name: "x", admin: true }, "admin: unknown field"],
      ["a wrong type", { role: "viewer", name: 7 }, "name:"],
      ["an unknown role", { role: "admin", name: "x" }, "role:"],
      ["a ttl below the minimum", { role: "viewer", name: "x", ttl_seconds: 1 }, "ttl_seconds:"],
    ])("attack: %s", async (_what, payload, field) => {
      const cp = await cpOn();
      const res = await post(cp, "/v1/tokens", cp.owner, payload);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ code: "REQUEST_INVALID" });
      expect(res.json<{ detail: string }>().detail).toContain(field);
      expect(await countRows(cp.store, "tokens")).toBe(1);
    });

    it("attack: a key given twice is refused (no last-one-wins)", async () => {
      const cp = await cpOn();
      const res = await cp.app.inject({ method: "POST", url: "/v1/tokens", headers: { ...bearer(cp.owner), "content-type": "application/json" }, payload: '{"role":"viewer","role":"owner","name":"x"}' });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ code: "REQUEST_INVALID" });
      expect(await countRows(cp.store, "tokens")).toBe(1);
    });

    it("attack: an oversized body gets 413 REQUEST_TOO_LARGE", async () => {
      const cp = await cpOn(undefined, { bodyLimit: 1024 });
      const res = await post(cp, "/v1/tokens", cp.owner, { role: "viewer", name: "x".repeat(4096) });
      expect(res.statusCode).toBe(413);
      expect(res.json()).toMatchObject({ code: "REQUEST_TOO_LARGE" });
      expect(await countRows(cp.store, "tokens")).toBe(1);
    });

    it("attack: a text/plain body gets 415", async () => {
      const cp = await cpOn();
      const res = await cp.app.inject({ method: "POST", url: "/v1/tokens", headers: { ...bearer(cp.owner), "content-type": "text/plain" }, payload: "role=owner" });
      expect(res.statusCode).toBe(415);
    });
  });

  describe("enrollment", () => {
    const mint = async (cp: TestCp, body: Record<string, unknown> = {}): Promise<string> => {
      const res = await post(cp, "/v1/enrollment-tokens", cp.owner, body);
      expect(res.statusCode).toBe(201);
      return res.json<{ token: string }>().token;
    };

    it("a node enrolls once with its token and gets a credential that reads releases; it gets exactly the operator's labels", async () => {
      const cp = await cpOn();
      const et = await mint(cp, { node_id: "edge-1", labels: { site: "lab" } });
      // Echoing the pinned labels is fine; they are the only ones the node gets.
      const res = await post(cp, "/v1/nodes/enroll", et, { node_id: "edge-1", labels: { site: "lab" } });
      expect(res.statusCode).toBe(201);
      const { credential, node_id } = res.json<{ credential: string; node_id: string }>();
      expect(node_id).toBe("edge-1");
      const node = await cp.store.db.selectFrom("nodes").selectAll().where("node_id", "=", "edge-1").executeTakeFirstOrThrow();
      expect(JSON.parse(node.labels)).toEqual({ site: "lab" });
      const read = await cp.app.inject({ url: "/v1/releases", headers: bearer(credential) });
      expect(read.statusCode).toBe(200);
    });

    it("attack: a second use of an enrollment token gets 401 and enrolls nothing", async () => {
      const cp = await cpOn();
      const et = await mint(cp);
      expect((await post(cp, "/v1/nodes/enroll", et, { node_id: "edge-1" })).statusCode).toBe(201);
      const again = await post(cp, "/v1/nodes/enroll", et, { node_id: "edge-2" });
      expect(again.statusCode).toBe(401);
      expect(again.json()).toMatchObject({ code: "ENROLLMENT_TOKEN_INVALID" });
      expect(await countRows(cp.store, "nodes")).toBe(1);
      expect(await countRows(cp.store, "node_credentials")).toBe(1);
    });

    it("attack: two concurrent uses of one enrollment token: exactly one wins", async () => {
      const location = await db.fresh();
      const cp = await cpOn(location);
      // PostgreSQL: a second server (its own pool), so the race crosses connections. SQLite: one server
      // (one connection per process, see the bootstrap test above).
      const other = db.dialect === "postgres" ? await cpOn(location) : cp;
      const et = await mint(cp);
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) => post(i % 2 === 0 ? cp : other, "/v1/nodes/enroll", et, { node_id: `edge-${i}` })),
      );
      const codes = results.map((r) => r.statusCode).sort();
      expect(codes.filter((c) => c === 201)).toHaveLength(1);
      for (const r of results.filter((x) => x.statusCode !== 201)) expect(r.json()).toMatchObject({ status: 401, code: "ENROLLMENT_TOKEN_INVALID" });
      expect(await countRows(cp.store, "nodes")).toBe(1);
      expect(await countRows(cp.store, "node_credentials")).toBe(1);
    });

    it("attack: an expired enrollment token gets 401", async () => {
      const cp = await cpOn();
      const et = await mint(cp, { ttl_seconds: 60 });
      cp.clock.advance(60_000);
      const res = await post(cp, "/v1/nodes/enroll", et, { node_id: "edge-1" });
      expect(res.statusCode).toBe(401);
      expect(await countRows(cp.store, "nodes")).toBe(0);
    });

    it("attack: a node enrolling with an unpinned-label token cannot give itself selector labels the operator did not grant (400, token unspent, no node)", async () => {
      const cp = await cpOn();
      const et = await mint(cp, { node_id: "node-x", labels: { site: "lab" } });
      for (const labels of [{ tier: "prod", ring: "canary" }, { site: "elsewhere" }]) {
        const res = await post(cp, "/v1/nodes/enroll", et, { node_id: "node-x", labels });
        expect(res.statusCode).toBe(400);
        expect(res.json()).toMatchObject({ code: "ENROLLMENT_LABELS_REFUSED" });
        expect(res.json<{ detail: string }>().detail).toMatch(/labels\./);
      }
      const sel = await cp.app.inject({ url: "/v1/nodes?label=tier=prod", headers: bearer(cp.owner) });
      expect(sel.json<{ nodes: unknown[] }>().nodes).toHaveLength(0);
      expect(await countRows(cp.store, "nodes")).toBe(0);
      // The token is still good for an enrollment without self-chosen labels, which gets the pinned ones only.
      expect((await post(cp, "/v1/nodes/enroll", et, { node_id: "node-x" })).statusCode).toBe(201);
      const node = await cp.app.inject({ url: "/v1/nodes/node-x", headers: bearer(cp.owner) });
      expect(node.json<{ labels: unknown }>().labels).toEqual({ site: "lab" });
    });

    it("attack: a wrong enrollment secret with a known token id does not reveal the pinned node id (the hash is checked before the pin)", async () => {
      const cp = await cpOn();
      const tok = await mint(cp, { node_id: "secret-gateway-7" });
      const forged = tok.slice(0, tok.length - 64) + "0".repeat(64);
      const res = await post(cp, "/v1/nodes/enroll", forged, { node_id: "guess" });
      expect({ status: res.statusCode, code: res.json<{ code: string }>().code, leaks: res.body.includes("secret-gateway-7") }).toEqual({ status: 401, code: "ENROLLMENT_TOKEN_INVALID", leaks: false });
    });

    it("attack: a token pinned to another node id gets 403 and stays unspent", async () => {
      const cp = await cpOn();
      const et = await mint(cp, { node_id: "edge-1" });
      const res = await post(cp, "/v1/nodes/enroll", et, { node_id: "edge-9" });
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({ code: "ENROLLMENT_NODE_MISMATCH" });
      expect((await post(cp, "/v1/nodes/enroll", et, { node_id: "edge-1" })).statusCode).toBe(201);
    });

    it("attack: enrolling an id that is taken gets 409 and leaves the token unspent", async () => {
      const cp = await cpOn();
      await cp.enroll("edge-1");
      const et = await mint(cp);
      const res = await post(cp, "/v1/nodes/enroll", et, { node_id: "edge-1" });
      expect(res.statusCode).toBe(409);
      expect(res.json()).toMatchObject({ code: "NODE_ALREADY_ENROLLED" });
      expect((await post(cp, "/v1/nodes/enroll", et, { node_id: "edge-2" })).statusCode).toBe(201);
    });

    it("attack: an operator token or a node credential is not an enrollment token (401), and an enrollment token opens nothing else (401)", async () => {
      const cp = await cpOn();
      const cred = await cp.enroll("edge-1");
      for (const t of [cp.owner, cred]) expect((await post(cp, "/v1/nodes/enroll", t, { node_id: "edge-5" })).statusCode).toBe(401);
      expect((await post(cp, "/v1/nodes/enroll", undefined, { node_id: "edge-5" })).statusCode).toBe(401);
      const et = await mint(cp);
      const res = await cp.app.inject({ url: "/v1/releases", headers: bearer(et) });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ code: "TOKEN_INVALID" });
    });

    it("attack: a node credential calling operator routes gets 403 PERMISSION_DENIED", async () => {
      const cp = await cpOn();
      const cred = await cp.enroll("edge-1");
      for (const [url, body] of [["/v1/tokens", { role: "owner", name: "me" }], ["/v1/enrollment-tokens", {}], ["/v1/releases", {}]] as const) {
        const res = await post(cp, url, cred, body);
        expect(res.statusCode, url).toBe(403);
        expect(res.json()).toMatchObject({ code: "PERMISSION_DENIED" });
      }
      expect(await countRows(cp.store, "tokens")).toBe(1);
    });

    it("attack: a revoked node credential gets 401 TOKEN_REVOKED", async () => {
      const cp = await cpOn();
      const cred = await cp.enroll("edge-1");
      await cp.store.db.updateTable("node_credentials").set({ revoked_at: "2026-12-05T10:00:00.000Z" }).execute();
      const res = await cp.app.inject({ url: "/v1/releases", headers: bearer(cred) });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ code: "TOKEN_REVOKED" });
    });

    it("attack: a node credential reporting as another node gets 403 NODE_IDENTITY_MISMATCH (selfOnly :node_id)", async () => {
      const cp = await cpOn();
      const cred = await cp.enroll("edge-1");
      const hook = authHook(cp.store, cp.clock);
      const fake = (nodeId: string) =>
        ({ is404: false, method: "POST", routeOptions: { url: "/v1/nodes/:node_id/heartbeat", config: { route: "heartbeat" } }, headers: bearer(cred), params: { node_id: nodeId } }) as unknown as FastifyRequest;
      const reply = { header: () => reply } as unknown as FastifyReply;
      await expect(hook(fake("edge-2"), reply)).rejects.toMatchObject({ code: "NODE_IDENTITY_MISMATCH" });
      const self = fake("edge-1");
      await hook(self, reply);
      expect(self.principal).toEqual({ kind: "node", node_id: "edge-1" });
    });
  });

  it("the store's dialect is the one under test", async () => {
    const cp = await cpOn();
    expect(cp.store.dialect).toBe(db.dialect);
    await sql`select 1`.execute(cp.store.db);
  });
});
