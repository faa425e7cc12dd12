import { randomBytes } from "node:crypto";
import canonicalize from "canonicalize";
import Fastify from "fastify";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { AckRequest, EnrollRequest, HeartbeatRequest, LatestQuery, ROUTES } from "../../src/cpapi/index.js";
import type { Release } from "../../src/cpapi/index.js";
import { problemDetails, problemType, sha256Digest, PROBLEM_CONTENT_TYPE } from "../../src/lib/index.js";
import { formatReference, openRepository } from "../../src/oci/index.js";
import type { MadeRelease } from "./release.js";

/**
 * A small control plane for node-side tests: the routes a node calls
 * (enroll, latest release with ETag/304, heartbeat, ack), per the cpapi
 * contract (bodies checked with its strict schemas, bearer credentials, a
 * node may report only as itself), on a real loopback port. It can be told
 * to misbehave: answer 500, garbage, hang, or 503 with Retry-After.
 */
export type Fault = "none" | "500" | "garbage" | "hang" | "busy";

export interface CpNodeServer {
  url: string;
  app: FastifyInstance;
  /** Single-use enrollment tokens; optionally pinned to a node id. */
  enrollTokens: Map<string, { node_id?: string }>;
  releases: Map<string, Release>;
  acks: { node_id: string; body: AckRequest }[];
  heartbeats: { node_id: string; body: HeartbeatRequest }[];
  latestCalls: { ifNoneMatch: string | undefined; status: number }[];
  fault: Fault;
  /** Node credential → node id. */
  credentials: Map<string, string>;
  close(): Promise<void>;
}

/** `from`: a stopped server whose state (credentials, releases, records) carries over, on `port` (a restart). */
export async function startCpNodeServer(o: { from?: CpNodeServer; port?: number } = {}): Promise<CpNodeServer> {
  const app = Fastify({ logger: false, forceCloseConnections: true });
  const f = o.from;
  const s: CpNodeServer = {
    url: "", app, enrollTokens: f?.enrollTokens ?? new Map<string, { node_id?: string }>(), releases: f?.releases ?? new Map<string, Release>(), acks: f?.acks ?? [], heartbeats: f?.heartbeats ?? [],
    latestCalls: f?.latestCalls ?? [], fault: "none", credentials: f?.credentials ?? new Map<string, string>(),
    close: () => app.close(),
  };
  const credentials = s.credentials;
  await app.register(problemDetails, {});
  const refuse = (reply: FastifyReply, status: number, code: string, detail: string): FastifyReply =>
    reply.code(status).type(PROBLEM_CONTENT_TYPE).send({ type: problemType(code), title: code, status, detail, code });
  const bearer = (req: FastifyRequest): string | undefined => /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
  const nodeOf = (req: FastifyRequest): string | undefined => credentials.get(bearer(req) ?? "");
  const faulty = (reply: FastifyReply): FastifyReply | Promise<never> | undefined => {
    if (s.fault === "500") return refuse(reply, 500, "INTERNAL", "internal error");
    if (s.fault === "garbage") return reply.code(200).type("application/json").send("{\"release_id\": 42, garbage");
    if (s.fault === "busy") return refuse(reply.header("retry-after", "120"), 503, "STORE_BUSY", "busy");
    if (s.fault === "hang") return new Promise<never>(() => undefined);
    return undefined;
  };

  app.post(ROUTES.enroll.url, (req, reply) => {
    const token = bearer(req);
    const entry = token === undefined ? undefined : s.enrollTokens.get(token);
    if (token === undefined || entry === undefined) return refuse(reply, 401, "ENROLLMENT_TOKEN_INVALID", "the enrollment token is unknown, expired or spent");
    const body = EnrollRequest.safeParse(req.body);
    if (!body.success) return refuse(reply, 400, "REQUEST_INVALID", body.error.message);
    s.enrollTokens.delete(token); // single use
    const nodeId = entry.node_id ?? body.data.node_id;
    const credential = `node-${randomBytes(16).toString("hex")}`;
    credentials.set(credential, nodeId);
    return reply.code(201).send({ node_id: nodeId, credential });
  });

  app.get(ROUTES.latestRelease.url, async (req, reply) => {
    if (nodeOf(req) === undefined) return refuse(reply, 401, "AUTH_REQUIRED", "no credential");
    const f = faulty(reply);
    if (f !== undefined) return f;
    const q = LatestQuery.parse(req.query);
    const latest = [...s.releases.values()].filter((r) => r.channel === q.channel).sort((a, b) => b.sequence - a.sequence)[0];
    const inm = req.headers["if-none-match"];
    if (latest === undefined) {
      s.latestCalls.push({ ifNoneMatch: inm, status: 404 });
      return refuse(reply, 404, "RELEASE_NOT_FOUND", `no release on channel ${q.channel}`);
    }
    const etag = `"${latest.release_id}"`;
    const status = inm === etag ? 304 : 200;
    s.latestCalls.push({ ifNoneMatch: inm, status });
    void reply.header("etag", etag);
    return status === 304 ? reply.code(304).send() : reply.send(latest);
  });

  const report = <T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: Error } }, into: { node_id: string; body: T }[]) =>
    async (req: FastifyRequest<{ Params: { node_id: string } }>, reply: FastifyReply) => {
      const node = nodeOf(req);
      if (node === undefined) return refuse(reply, 401, "AUTH_REQUIRED", "no credential");
      if (node !== req.params.node_id) return refuse(reply, 403, "NODE_IDENTITY_MISMATCH", "a node reports only as itself");
      const f = faulty(reply);
      if (f !== undefined) return f;
      const body = schema.safeParse(req.body);
      if (!body.success) return refuse(reply, 400, "REQUEST_INVALID", body.error.message);
      into.push({ node_id: node, body: body.data });
      return reply.code(204).send();
    };
  app.post(ROUTES.heartbeat.url, report(HeartbeatRequest, s.heartbeats));
  app.post(ROUTES.ack.url, report(AckRequest, s.acks));

  s.url = await app.listen({ host: "127.0.0.1", port: o.port ?? 0 });
  return s;
}

/**
 * The control plane's record of a signed release (what `POST /v1/releases`
 * would store): the statement envelope read from the registry, the id
 * derived from its bytes, the digests from its predicate. `image` is where
 * nodes pull it from.
 */
export async function releaseRecord(rel: MadeRelease, overrides: Partial<Release> = {}): Promise<Release> {
  const repo = openRepository(rel.ref, { plainHttp: true });
  const envelopeBytes = await repo.getBlob(rel.signed.statement.envelope);
  const p = rel.signed.statement.predicate;
  const now = new Date().toISOString();
  return {
    // As the control plane names releases: the SHA-256 of the envelope in canonical JSON (RFC 8785).
    release_id: `rel-${sha256Digest(canonicalize(JSON.parse(Buffer.from(envelopeBytes).toString("utf8"))) ?? "").slice("sha256:".length, "sha256:".length + 16)}`,
    channel: p.channel, sequence: p.sequence, image: formatReference(rel.ref), image_digest: rel.digest,
    repository: p.repository, lock_digest: p.lock.digest, lock_fingerprint: p.lock.behavioral_fingerprint, bundle_digest: p.policy_bundle.digest,
    statement: JSON.parse(Buffer.from(envelopeBytes).toString("utf8")) as Release["statement"], notes: "", issued_at: p.issued_at, expires_at: p.expires_at,
    published_at: now, published_by: "test", standby: false, ...overrides,
  };
}
