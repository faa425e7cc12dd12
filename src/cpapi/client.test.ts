import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inspect } from "node:util";
import { createServer } from "node:net";
import Fastify from "fastify";
import type { FastifyInstance, FastifyReply } from "fastify";
import { CpClient, CpClientError, ROUTES } from "./index.js";
import type { RouteName } from "./index.js";
import { UsageError } from "../lib/index.js";

// A real Fastify server on loopback that answers every route of the contract
// and records what arrived, so the client is tested over real HTTP (no fetch mocks).
const TOKEN = "op-sekrit-0123456789abcdef";
const RELEASE_ID = "rel-0123456789abcdef";
const FP = `blake3:${"a".repeat(64)}`;
const DIGEST = `sha256:${"b".repeat(64)}`;
const AT = "2026-12-05T10:00:00Z";
const RELEASE = {
  release_id: RELEASE_ID, channel: "stable", sequence: 3, image: "oci:/x:1", image_digest: DIGEST, repository: "example/agent",
  lock_digest: DIGEST, lock_fingerprint: FP, bundle_digest: DIGEST, statement: { payloadType: "application/vnd.in-toto+json", payload: "e30=", signatures: [{ sig: "AA==" }] },
  notes: "", issued_at: AT, expires_at: "2027-12-05T10:00:00Z", published_at: AT, published_by: "ci",
};
const NODE = { node_id: "edge-1", labels: {}, release_id: null, activation_sequence: null, lock_fingerprint: null, boot_epoch: 0, wal_generation: null, runtime_version: "0.1.0", enrolled_at: AT, last_seen: null, last_ack: null };

const PLAN = "plan-0123456789abcdef";
const COUNTERS = { members: 1, pending: 1, in_progress: 0, succeeded: 0, failed: 0, stuck: 0, retried: 0, rolled_back: 0, skipped: 0, budget_used: 0, budget_allowed: 0, failures_total: 0 };
const STAGE = { stage_id: "all", stage_phase: "open", cumulative: 1, started_at: AT, batch_finished_at: null, passed_at: null, manual_approved: false, gates: [] };
const ROLLOUT = {
  plan_id: PLAN, release_id: RELEASE_ID, previous_release_id: null, phase: "active", current_stage_id: "all", max_concurrency: 1, stuck_timeout_seconds: 60, late_joiners: "ignore",
  created_at: AT, updated_at: AT, stages: [STAGE], nodes: [], counters: COUNTERS, reason: "created", ignored_late_joiners: [], notes: "",
};
const { nodes: _nodes, ...ROLLOUT_SUMMARY } = ROLLOUT;

interface Seen { route: RouteName; method: string; url: string; auth: string | undefined; body: unknown; ifNoneMatch: string | undefined }

const ANSWERS: Record<RouteName, unknown> = {
  healthz: { status: "ok" },
  readyz: { status: "ready" },
  metrics: "# HELP up 1\nup 1\n",
  openapi: { openapi: "3.1.0", paths: {} },
  createToken: { token_id: "t1", token: "new-secret", role: "viewer", name: "ci", expires_at: null },
  createEnrollmentToken: { token: "enr-1", node_id: null, expires_at: AT },
  enroll: { node_id: "edge-1", credential: "node-cred" },
  publishRelease: RELEASE,
  listReleases: { releases: [RELEASE], next_cursor: null },
  latestRelease: RELEASE,
  getRelease: RELEASE,
  listNodes: { nodes: [NODE], next_cursor: "c2" },
  getNode: NODE,
  heartbeat: {},
  ack: {},
  ingestEvents: { received: 1, inserted: 1, deduped: 0 },
  queryEvents: { events: [], count: 0, next_cursor: null },
  createRollout: ROLLOUT,
  listRollouts: { rollouts: [ROLLOUT_SUMMARY], next_cursor: null },
  stuckRollouts: { stuck_plans: [] },
  getRollout: ROLLOUT,
  pauseRollout: ROLLOUT,
  resumeRollout: ROLLOUT,
  cancelRollout: ROLLOUT,
  rollbackRollout: ROLLOUT,
  recoverRollout: ROLLOUT,
  approveStage: { approved: true, promoted: false, message: "stage all approved" },
  stageGates: { stage_id: "all", stage_phase: "open", gates: [], manual_approved: false, all_passed: false },
};

let app: FastifyInstance;
let base: string;
const seen: Seen[] = [];
/** Per-test override of the next answer to a route. */
let override: ((route: RouteName, reply: FastifyReply) => unknown) | undefined;

beforeAll(async () => {
  app = Fastify({ logger: false, forceCloseConnections: true });
  for (const [name, decl] of Object.entries(ROUTES) as [RouteName, (typeof ROUTES)[RouteName]][]) {
    app.route({
      method: decl.method,
      url: decl.url,
      handler: async (req, reply) => {
        seen.push({ route: name, method: req.method, url: req.url, auth: req.headers.authorization, body: req.body, ifNoneMatch: req.headers["if-none-match"] });
        if (override) return override(name, reply);
        if (name === "latestRelease") {
          void reply.header("etag", `"${RELEASE_ID}"`);
          if (req.headers["if-none-match"] === `"${RELEASE_ID}"`) return reply.code(304).send();
        }
        if (name === "metrics") return reply.type("text/plain").send(ANSWERS.metrics);
        return reply.code(name === "enroll" || name === "publishRelease" || name === "createToken" ? 201 : 200).send(ANSWERS[name]);
      },
    });
  }
  base = await app.listen({ host: "127.0.0.1", port: 0 });
});
afterAll(async () => app.close());

function client(o: { timeoutMs?: number; maxResponseBytes?: number } = {}): CpClient {
  return new CpClient({ baseUrl: base, token: TOKEN, ...o });
}
async function last(): Promise<Seen> {
  return Promise.resolve(seen[seen.length - 1] as Seen);
}
async function rejected(p: Promise<unknown>): Promise<CpClientError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(CpClientError);
  return e as CpClientError;
}
function problem(reply: FastifyReply, status: number, code: string, extra: Record<string, string> = {}): FastifyReply {
  return reply.code(status).type("application/problem+json").send({ type: `urn:autonomyops:error:${code}`, title: code, status, detail: `detail of ${code}`, code, hint: `hint of ${code}`, ...extra });
}

describe("CpClient: one method per route", () => {
  it("has a method named after every route in ROUTES", () => {
    const c = client();
    for (const name of Object.keys(ROUTES)) expect(typeof (c as unknown as Record<string, unknown>)[name], name).toBe("function");
  });

  it("calls each route with its method and path, the bearer token, and parses the answer", async () => {
    override = undefined;
    const c = client();
    const calls: [RouteName, () => Promise<unknown>, string][] = [
      ["healthz", () => c.healthz(), "/healthz"],
      ["readyz", () => c.readyz(), "/readyz"],
      ["metrics", () => c.metrics(), "/metrics"],
      ["openapi", () => c.openapi(), "/openapi.json"],
      ["createToken", () => c.createToken({ role: "viewer", name: "ci" }), "/v1/tokens"],
      ["createEnrollmentToken", () => c.createEnrollmentToken({}), "/v1/enrollment-tokens"],
      ["publishRelease", () => c.publishRelease({ statement: RELEASE.statement, image: "oci:/x:1", channel: "stable" }), "/v1/releases"],
      ["listReleases", () => c.listReleases({ channel: "stable", limit: 5 }), "/v1/releases?channel=stable&limit=5"],
      ["latestRelease", () => c.latestRelease("stable"), "/v1/releases/latest?channel=stable"],
      ["getRelease", () => c.getRelease(RELEASE_ID), `/v1/releases/${RELEASE_ID}`],
      ["listNodes", () => c.listNodes({ label: ["site=a", "hw=pi"] }), "/v1/nodes?label=site%3Da&label=hw%3Dpi"],
      ["getNode", () => c.getNode("edge-1"), "/v1/nodes/edge-1"],
      ["heartbeat", () => c.heartbeat("edge-1", { release_id: null, activation_sequence: null, lock_fingerprint: null, boot_epoch: 0, wal_generation: null, runtime_version: "0.1.0" }), "/v1/nodes/edge-1/heartbeat"],
      ["ack", () => c.ack("edge-1", { release_id: RELEASE_ID, phase: "polled", at: AT }), "/v1/nodes/edge-1/ack"],
      ["ingestEvents", () => c.ingestEvents({ events: [{ event_id: "e1", event_type: "x", node_id: "edge-1", timestamp: AT }] }), "/v1/events"],
      ["queryEvents", () => c.queryEvents({ node_id: "edge-1", limit: 10 }), "/v1/events?node_id=edge-1&limit=10"],
      ["createRollout", () => c.createRollout({ release_id: RELEASE_ID, previous_release_id: null, target: { nodes: ["edge-1"] }, max_concurrency: 1, stages: [{ stage_id: "all", batch: { percent: 100 } }], failure_budget: { max_failures: 0 }, stuck_timeout_seconds: 60, late_joiners: "ignore" }), "/v1/rollouts"],
      ["listRollouts", () => c.listRollouts({ limit: 2 }), "/v1/rollouts?limit=2"],
      ["stuckRollouts", () => c.stuckRollouts(60), "/v1/rollouts/stuck?threshold_seconds=60"],
      ["getRollout", () => c.getRollout(PLAN), `/v1/rollouts/${PLAN}`],
      ["pauseRollout", () => c.pauseRollout(PLAN), `/v1/rollouts/${PLAN}/pause`],
      ["resumeRollout", () => c.resumeRollout(PLAN), `/v1/rollouts/${PLAN}/resume`],
      ["cancelRollout", () => c.cancelRollout(PLAN, "bad"), `/v1/rollouts/${PLAN}/cancel`],
      ["rollbackRollout", () => c.rollbackRollout(PLAN), `/v1/rollouts/${PLAN}/rollback`],
      ["recoverRollout", () => c.recoverRollout(PLAN, { strategy: "retry" }), `/v1/rollouts/${PLAN}/recover`],
      ["approveStage", () => c.approveStage(PLAN, "all"), `/v1/rollouts/${PLAN}/stages/all/approve`],
      ["stageGates", () => c.stageGates(PLAN, "all"), `/v1/rollouts/${PLAN}/stages/all/gates`],
    ];
    for (const [name, call, url] of calls) {
      const out = await call();
      const s = await last();
      expect(s.route, name).toBe(name);
      expect(s.method, name).toBe(ROUTES[name].method);
      expect(s.url, name).toBe(url);
      expect(s.auth, name).toBe(`Bearer ${TOKEN}`);
      if (name === "metrics") expect(out).toBe(ANSWERS.metrics);
      else if (name === "latestRelease") expect(out).toMatchObject({ status: "release", etag: `"${RELEASE_ID}"`, release: { release_id: RELEASE_ID } });
      else if (name === "stuckRollouts") expect(out).toEqual([]);
      else if (name !== "heartbeat" && name !== "ack") expect(out, name).toMatchObject(ANSWERS[name] as object);
    }
    // Every route except enroll was covered above; enroll authenticates with its own token.
    expect(new Set(calls.map((c) => c[0]))).toEqual(new Set(Object.keys(ROUTES).filter((n) => n !== "enroll")));
  });

  it("enroll sends the enrollment token, not the client's token, and applies request defaults", async () => {
    override = undefined;
    const out = await client().enroll("enroll-tok", { node_id: "edge-1" });
    expect(out).toEqual({ node_id: "edge-1", credential: "node-cred" });
    const s = await last();
    expect(s.auth).toBe("Bearer enroll-tok");
    await client().ack("edge-1", { release_id: RELEASE_ID, phase: "verify_failed", at: AT });
    expect((await last()).body).toEqual({ release_id: RELEASE_ID, phase: "verify_failed", lock_fingerprint: null, detail: "", at: AT });
  });

  it("refuses a bad request before sending it, naming the field", async () => {
    override = undefined;
    const before = seen.length;
    const e = await client().ack("edge-1", { release_id: RELEASE_ID, phase: "polled", at: AT, extra: 1 } as never).then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(UsageError);
    expect(String((e as Error).message)).toContain("extra: unknown field");
    await expect(client().getNode("Bad/Node")).rejects.toBeInstanceOf(UsageError);
    expect(seen.length).toBe(before);
  });
});

describe("CpClient.latestRelease", () => {
  it("sends If-None-Match and reports not_modified on 304", async () => {
    override = undefined;
    const r = await client().latestRelease("stable", `"${RELEASE_ID}"`);
    expect(r).toEqual({ status: "not_modified" });
    expect((await last()).ifNoneMatch).toBe(`"${RELEASE_ID}"`);
  });

  it("404 RELEASE_NOT_FOUND is none; any other 404 (no such route: not a control plane) is an error", async () => {
    override = (_r, reply) => problem(reply, 404, "RELEASE_NOT_FOUND");
    expect(await client().latestRelease("stable")).toEqual({ status: "none" });
    override = (_r, reply) => problem(reply, 404, "NOT_FOUND");
    const e = await rejected(client().latestRelease("stable"));
    expect([e.code, e.status, e.problemCode]).toEqual(["CP_REQUEST_REJECTED", 404, "NOT_FOUND"]);
  });
});

describe("CpClient errors", () => {
  it("turns problem details into CpClientError with status, problem code, detail, hint and Retry-After as data", async () => {
    override = (_r, reply) => problem(reply.header("retry-after", "7"), 503, "STORE_BUSY");
    const e = await rejected(client().listNodes());
    expect(e.code).toBe("CP_REQUEST_REJECTED");
    expect([e.status, e.problemCode, e.detail, e.hint, e.retryAfterMs]).toEqual([503, "STORE_BUSY", "detail of STORE_BUSY", "hint of STORE_BUSY", 7000]);
    expect(e.retriable).toBe(true);
    expect(e.message).toContain("503 STORE_BUSY: detail of STORE_BUSY");
    override = (_r, reply) => problem(reply, 403, "NODE_IDENTITY_MISMATCH");
    const f = await rejected(client().heartbeat("edge-1", { release_id: null, activation_sequence: null, lock_fingerprint: null, boot_epoch: 0, wal_generation: null, runtime_version: "x" }));
    expect([f.status, f.problemCode, f.retriable, f.retryAfterMs]).toEqual([403, "NODE_IDENTITY_MISMATCH", false, null]);
  });

  it("a 500 without problem details, a non-JSON 200 and an off-contract 200 are typed errors", async () => {
    override = (_r, reply) => reply.code(500).type("text/html").send("<h1>oops</h1>");
    const a = await rejected(client().getNode("edge-1"));
    expect([a.code, a.status, a.problemCode, a.retriable]).toEqual(["CP_REQUEST_REJECTED", 500, null, true]);
    override = (_r, reply) => reply.code(200).type("text/plain").send("garbage{");
    const b = await rejected(client().latestRelease("stable"));
    expect([b.code, b.detail]).toEqual(["CP_RESPONSE_INVALID", "the body is not JSON"]);
    override = (_r, reply) => reply.code(200).send({ ...RELEASE, release_id: "not-an-id" });
    const c = await rejected(client().latestRelease("stable"));
    expect(c.code).toBe("CP_RESPONSE_INVALID");
    expect(c.detail).toContain("release_id");
  });

  it("a transport failure (nothing listening) is CP_REQUEST_FAILED with the reason", async () => {
    const port = await freePort();
    const e = await rejected(new CpClient({ baseUrl: `http://127.0.0.1:${port}`, token: TOKEN }).healthz());
    expect(e.code).toBe("CP_REQUEST_FAILED");
    expect(e.status).toBeNull();
    expect(e.message).toContain("ECONNREFUSED");
    expect(e.retriable).toBe(true);
  });

  it("a server that hangs hits the per-request deadline (CP_REQUEST_FAILED), and the caller's signal cancels", async () => {
    override = () => new Promise(() => undefined);
    const t0 = Date.now();
    const e = await rejected(client({ timeoutMs: 300 }).latestRelease("stable"));
    expect(e.code).toBe("CP_REQUEST_FAILED");
    expect(e.detail).toBe("no answer within 300 ms");
    expect(Date.now() - t0).toBeLessThan(5000);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const f = await rejected(client().healthz({ signal: ac.signal }));
    expect(f.detail).toBe("cancelled");
  });

  it("a response larger than the cap is refused without reading it all", async () => {
    override = (_r, reply) => reply.code(200).send({ status: "x".repeat(200_000) });
    const e = await rejected(client({ maxResponseBytes: 10_000 }).healthz());
    expect(e.code).toBe("CP_RESPONSE_INVALID");
  });

  it("does not follow a redirect (the bearer token never goes to another server)", async () => {
    const other = Fastify({ logger: false });
    const hits: string[] = [];
    other.get("/*", (req) => { hits.push(String(req.headers.authorization)); return {}; });
    const otherUrl = await other.listen({ host: "127.0.0.1", port: 0 });
    try {
      override = (_r, reply) => reply.redirect(`${otherUrl}/healthz`, 302);
      const e = await rejected(client().healthz());
      expect([e.code, e.status]).toEqual(["CP_REQUEST_REJECTED", 302]);
      expect(hits).toEqual([]);
    } finally {
      await other.close();
    }
  });

  it("never shows the token: not in any error message, its JSON, nor the client's inspection", async () => {
    const errors: CpClientError[] = [];
    override = (_r, reply) => problem(reply, 401, "AUTH_REQUIRED");
    errors.push(await rejected(client().listNodes()));
    override = () => new Promise(() => undefined);
    errors.push(await rejected(client({ timeoutMs: 100 }).listNodes()));
    override = (_r, reply) => reply.send("garbage");
    errors.push(await rejected(client().getNode("edge-1")));
    errors.push(await rejected(new CpClient({ baseUrl: `http://127.0.0.1:${await freePort()}`, token: TOKEN }).healthz()));
    for (const e of errors) {
      expect(JSON.stringify(e.toJSON())).not.toContain(TOKEN);
      expect(e.message).not.toContain(TOKEN);
      expect(inspect(e, { depth: 5 })).not.toContain(TOKEN);
    }
    expect(JSON.stringify(client())).not.toContain(TOKEN);
    expect(inspect(client(), { depth: 5 })).not.toContain(TOKEN);
    expect(() => new CpClient({ baseUrl: "http://u:p@127.0.0.1:1" })).toThrow(/credentials/);
  });
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
