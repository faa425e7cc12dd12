import { z } from "zod";
import { formatProblems, fieldProblems, UsageError, systemClock } from "../lib/index.js";
import type { Clock } from "../lib/index.js";
import { CreatedEnrollmentToken, CreatedToken, CreateEnrollmentTokenRequest, CreateTokenRequest, Enrolled, EnrollRequest, RevokedNodeCredential, TokenId, TokenList, TokenSummary } from "./identity.js";
import { PublishReleaseRequest, Release, ReleasePage } from "./releases.js";
import { AckRequest, HeartbeatRequest, Node, NodePage } from "./nodes.js";
import { EventPage, IngestRequest, IngestResult } from "./events.js";
import { Channel, ReleaseId, NodeId } from "./common.js";
import { ApproveRequest, ApproveResult, CreateRolloutRequest, PlanCommandRequest, PlanId, RecoverRequest, Rollout, RolloutPage, StageGates, StageId, StuckPlans } from "./rollouts.js";
import type { StuckPlan } from "./rollouts.js";
import { ROUTES } from "./routes.js";
import type { RouteName } from "./routes.js";
import { httpCall, parseAnswer, rejection } from "./client-http.js";
import type { HttpAnswer, HttpCallOptions } from "./client-http.js";
import { CpClientError } from "./client-error.js";

/**
 * The typed control-plane client: one method per route in {@link ROUTES}
 * (same names), used by the CLI, the node's release poller and the fleet
 * simulator. Requests are checked against the cpapi schemas before they are
 * sent (a bad field is a USAGE error naming it); answers are parsed with them
 * (off-contract → CP_RESPONSE_INVALID); a refusal is a {@link CpClientError}
 * carrying the server's problem details and any Retry-After, which the caller
 * may honour or not.
 *
 * ### Examples
 * ```ts
 * const cp = new CpClient({ baseUrl: "http://127.0.0.1:7300", token });
 * const r = await cp.latestRelease("stable", lastEtag);
 * if (r.status === "release") lastEtag = r.etag;
 * ```
 */
export interface CpClientOptions {
  /** `http(s)://host:port[/prefix]`; routes are appended to its path. */
  readonly baseUrl: string | URL;
  /** Bearer token: an operator token or a node credential. Sent in the Authorization header only. */
  readonly token?: string | undefined;
  /** Per-request deadline, connect to last body byte (default 10 s). */
  readonly timeoutMs?: number;
  /** Largest response body read (default 8 MiB): a hostile server cannot exhaust memory. */
  readonly maxResponseBytes?: number;
  /** Reads Retry-After dates against it (default the system clock). */
  readonly clock?: Clock;
  /** PEM of a private CA that issued the control plane's certificate (`--server-ca`); only with an https base URL. */
  readonly ca?: string | undefined;
}

/** What {@link CpClient.latestRelease} found. `etag` is what to send as If-None-Match next time. */
export type LatestReleaseResult = { status: "not_modified" } | { status: "release"; release: Release; etag: string } | { status: "none" };

export interface ListReleasesQuery { channel?: string; cursor?: string; limit?: number }
export interface ListNodesQuery { /** `key=value` selectors, all must match. */ label?: readonly string[]; cursor?: string; limit?: number }
export interface QueryEventsQuery { node_id?: string; event_type?: string; since?: string; until?: string; cursor?: string; limit?: number }

/** Per-call options every method takes last. */
export interface CallOptions { readonly signal?: AbortSignal }

const Loose = z.looseObject({});
const OpenApiDoc = z.looseObject({ openapi: z.string() });

export class CpClient {
  readonly baseUrl: URL;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;
  readonly #maxResponseBytes: number;
  readonly #clock: Clock;
  readonly #ca: string | undefined;

  constructor(o: CpClientOptions) {
    const url = typeof o.baseUrl === "string" ? parseBase(o.baseUrl) : new URL(o.baseUrl.href);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(`control plane URL must be http:// or https:// (got ${url.protocol})`, "pass --server http(s)://host:port");
    if (url.username !== "" || url.password !== "") throw new UsageError("control plane URL must not carry credentials (user:password@)", "pass the token with --token / the node credential, not in the URL");
    this.baseUrl = url;
    this.#token = o.token;
    this.#timeoutMs = o.timeoutMs ?? 10_000;
    this.#maxResponseBytes = o.maxResponseBytes ?? 8 * 1024 * 1024;
    this.#clock = o.clock ?? systemClock;
    if (o.ca !== undefined && url.protocol !== "https:") throw new UsageError("a CA for the control plane (--server-ca) needs an https:// URL", "pass --server https://host:port");
    this.#ca = o.ca;
  }

  /** The same server with another bearer token (e.g. the node credential after enrollment). */
  withToken(token: string | undefined): CpClient {
    return new CpClient({ baseUrl: this.baseUrl, token, timeoutMs: this.#timeoutMs, maxResponseBytes: this.#maxResponseBytes, clock: this.#clock, ca: this.#ca });
  }

  /** Never shows the token (console.log, util.inspect, JSON.stringify). */
  toJSON(): Record<string, unknown> {
    return { baseUrl: this.baseUrl.href, token: this.#token === undefined ? null : "[REDACTED]" };
  }

  async healthz(o?: CallOptions): Promise<Record<string, unknown>> {
    return this.#json("healthz", Loose, { ...o });
  }

  async readyz(o?: CallOptions): Promise<Record<string, unknown>> {
    return this.#json("readyz", Loose, { ...o });
  }

  /** Prometheus text exposition. */
  async metrics(o?: CallOptions): Promise<string> {
    const a = await this.#ok("metrics", { ...o });
    return a.text;
  }

  async openapi(o?: CallOptions): Promise<z.output<typeof OpenApiDoc>> {
    return this.#json("openapi", OpenApiDoc, { ...o });
  }

  async createToken(req: z.input<typeof CreateTokenRequest>, o?: CallOptions): Promise<CreatedToken> {
    return this.#json("createToken", CreatedToken, { ...o, body: checked(CreateTokenRequest, req, "token request") });
  }

  /** Every operator token, without secrets. */
  async listTokens(o?: CallOptions): Promise<TokenList> {
    return this.#json("listTokens", TokenList, { ...o });
  }

  /** Revokes an operator token by id (effective within the server's 1-second auth cache on other servers). */
  async revokeToken(tokenId: string, o?: CallOptions): Promise<TokenSummary> {
    checked(TokenId, tokenId, "token id");
    return this.#json("revokeToken", TokenSummary, { ...o, params: { token_id: tokenId } });
  }

  /** Revokes every live credential of a node (it must enroll again with a new enrollment token). */
  async revokeNodeCredential(nodeId: string, o?: CallOptions): Promise<RevokedNodeCredential> {
    checked(NodeId, nodeId, "node id");
    return this.#json("revokeNodeCredential", RevokedNodeCredential, { ...o, params: { node_id: nodeId } });
  }

  /** Withdraws a release (owner only): latest skips it and its channel sequence is free again. */
  async withdrawRelease(releaseId: string, o?: CallOptions): Promise<Release> {
    checked(ReleaseId, releaseId, "release id");
    return this.#json("withdrawRelease", Release, { ...o, params: { release_id: releaseId } });
  }

  async createEnrollmentToken(req: z.input<typeof CreateEnrollmentTokenRequest>, o?: CallOptions): Promise<CreatedEnrollmentToken> {
    return this.#json("createEnrollmentToken", CreatedEnrollmentToken, { ...o, body: checked(CreateEnrollmentTokenRequest, req, "enrollment token request") });
  }

  /** Authenticated by the single-use enrollment token (not the client's token); answers the node credential. */
  async enroll(enrollmentToken: string, req: z.input<typeof EnrollRequest>, o?: CallOptions): Promise<Enrolled> {
    return this.#json("enroll", Enrolled, { ...o, token: enrollmentToken, body: checked(EnrollRequest, req, "enrollment") });
  }

  async publishRelease(req: z.input<typeof PublishReleaseRequest>, o?: CallOptions): Promise<Release> {
    return this.#json("publishRelease", Release, { ...o, body: checked(PublishReleaseRequest, req, "release") });
  }

  async listReleases(q: ListReleasesQuery = {}, o?: CallOptions): Promise<ReleasePage> {
    return this.#json("listReleases", ReleasePage, { ...o, query: { channel: q.channel, cursor: q.cursor, limit: numberParam(q.limit) } });
  }

  /**
   * GET /v1/releases/latest: `etag` (from the previous answer) goes out as
   * If-None-Match; 304 → not_modified, 404 RELEASE_NOT_FOUND → none.
   */
  async latestRelease(channel: string, etag?: string, o?: CallOptions): Promise<LatestReleaseResult> {
    checked(Channel, channel, "channel");
    const route = ROUTES.latestRelease;
    const a = await this.#call("latestRelease", { ...o, query: { channel }, headers: etag !== undefined ? { "if-none-match": etag } : {} });
    if (a.status === 304) return { status: "not_modified" };
    if (a.status === 404 && (a.body as { code?: unknown } | undefined)?.code === "RELEASE_NOT_FOUND") return { status: "none" };
    if (a.status !== 200) throw rejection(route, a, this.#clock.now());
    const release = parseAnswer(route, Release, a);
    return { status: "release", release, etag: a.headers.get("etag") ?? `"${release.release_id}"` };
  }

  async getRelease(releaseId: string, o?: CallOptions): Promise<Release> {
    checked(ReleaseId, releaseId, "release id");
    return this.#json("getRelease", Release, { ...o, params: { release_id: releaseId } });
  }

  async listNodes(q: ListNodesQuery = {}, o?: CallOptions): Promise<NodePage> {
    return this.#json("listNodes", NodePage, { ...o, query: { label: q.label, cursor: q.cursor, limit: numberParam(q.limit) } });
  }

  async getNode(nodeId: string, o?: CallOptions): Promise<Node> {
    checked(NodeId, nodeId, "node id");
    return this.#json("getNode", Node, { ...o, params: { node_id: nodeId } });
  }

  /** Any 2xx is success; the body (if any) is not part of the contract. */
  async heartbeat(nodeId: string, req: z.input<typeof HeartbeatRequest>, o?: CallOptions): Promise<void> {
    checked(NodeId, nodeId, "node id");
    await this.#ok("heartbeat", { ...o, params: { node_id: nodeId }, body: checked(HeartbeatRequest, req, "heartbeat") });
  }

  /** Any 2xx is success; the body (if any) is not part of the contract. */
  async ack(nodeId: string, req: z.input<typeof AckRequest>, o?: CallOptions): Promise<void> {
    checked(NodeId, nodeId, "node id");
    await this.#ok("ack", { ...o, params: { node_id: nodeId }, body: checked(AckRequest, req, "ack") });
  }

  async ingestEvents(req: z.input<typeof IngestRequest>, o?: CallOptions): Promise<IngestResult> {
    return this.#json("ingestEvents", IngestResult, { ...o, body: checked(IngestRequest, req, "events") });
  }

  async queryEvents(q: QueryEventsQuery = {}, o?: CallOptions): Promise<EventPage> {
    return this.#json("queryEvents", EventPage, { ...o, query: { node_id: q.node_id, event_type: q.event_type, since: q.since, until: q.until, cursor: q.cursor, limit: numberParam(q.limit) } });
  }

  async createRollout(req: z.input<typeof CreateRolloutRequest>, o?: CallOptions): Promise<Rollout> {
    return this.#json("createRollout", Rollout, { ...o, body: checked(CreateRolloutRequest, req, "rollout plan") });
  }

  async listRollouts(q: { cursor?: string; limit?: number } = {}, o?: CallOptions): Promise<RolloutPage> {
    return this.#json("listRollouts", RolloutPage, { ...o, query: { cursor: q.cursor, limit: numberParam(q.limit) } });
  }

  async stuckRollouts(thresholdSeconds?: number, o?: CallOptions): Promise<StuckPlan[]> {
    return (await this.#json("stuckRollouts", StuckPlans, { ...o, query: { threshold_seconds: numberParam(thresholdSeconds) } })).stuck_plans;
  }

  async getRollout(planId: string, o?: CallOptions): Promise<Rollout> {
    return this.#json("getRollout", Rollout, { ...o, params: { plan_id: checked(PlanId, planId, "plan id") } });
  }

  async pauseRollout(planId: string, reason = "", o?: CallOptions): Promise<Rollout> {
    return this.#planCommand("pauseRollout", planId, reason, o);
  }

  async resumeRollout(planId: string, reason = "", o?: CallOptions): Promise<Rollout> {
    return this.#planCommand("resumeRollout", planId, reason, o);
  }

  /** The CLI's `rollout abort`. */
  async cancelRollout(planId: string, reason = "", o?: CallOptions): Promise<Rollout> {
    return this.#planCommand("cancelRollout", planId, reason, o);
  }

  async rollbackRollout(planId: string, reason = "", o?: CallOptions): Promise<Rollout> {
    return this.#planCommand("rollbackRollout", planId, reason, o);
  }

  async recoverRollout(planId: string, req: z.input<typeof RecoverRequest>, o?: CallOptions): Promise<Rollout> {
    return this.#json("recoverRollout", Rollout, { ...o, params: { plan_id: checked(PlanId, planId, "plan id") }, body: checked(RecoverRequest, req, "recovery") });
  }

  async approveStage(planId: string, stageId: string, reason = "", o?: CallOptions): Promise<z.output<typeof ApproveResult>> {
    const params = { plan_id: checked(PlanId, planId, "plan id"), stage_id: checked(StageId, stageId, "stage id") };
    return this.#json("approveStage", ApproveResult, { ...o, params, body: checked(ApproveRequest, { reason }, "approval") });
  }

  async stageGates(planId: string, stageId: string, o?: CallOptions): Promise<StageGates> {
    return this.#json("stageGates", StageGates, { ...o, params: { plan_id: checked(PlanId, planId, "plan id"), stage_id: checked(StageId, stageId, "stage id") } });
  }

  async #planCommand(name: "pauseRollout" | "resumeRollout" | "cancelRollout" | "rollbackRollout", planId: string, reason: string, o?: CallOptions): Promise<Rollout> {
    return this.#json(name, Rollout, { ...o, params: { plan_id: checked(PlanId, planId, "plan id") }, body: checked(PlanCommandRequest, { reason }, "command") });
  }

  async #json<S extends z.ZodType>(name: RouteName, schema: S, c: Omit<HttpCallOptions, "route">): Promise<z.output<S>> {
    return parseAnswer(ROUTES[name], schema, await this.#ok(name, c));
  }

  async #ok(name: RouteName, c: Omit<HttpCallOptions, "route">): Promise<HttpAnswer> {
    const a = await this.#call(name, c);
    if (a.status < 200 || a.status > 299) throw rejection(ROUTES[name], a, this.#clock.now());
    return a;
  }

  #call(name: RouteName, c: Omit<HttpCallOptions, "route">): Promise<HttpAnswer> {
    const token = "token" in c ? c.token : this.#token;
    return httpCall({ baseUrl: this.baseUrl, timeoutMs: this.#timeoutMs, maxResponseBytes: this.#maxResponseBytes, ca: this.#ca }, { ...c, route: ROUTES[name], token });
  }
}

function parseBase(raw: string): URL {
  try {
    return new URL(raw);
  } catch {
    throw new UsageError("control plane URL is not a URL", "pass --server http(s)://host:port");
  }
}

function numberParam(n: number | undefined): string | undefined {
  return n === undefined ? undefined : String(n);
}

/** The request as the schema reads it (defaults applied); a bad field is a USAGE error naming it, before anything is sent. */
function checked<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw new UsageError(`invalid ${what}: ${formatProblems(fieldProblems(r.error.issues))}`, "fix the named fields; the control plane would refuse them");
}

export { CpClientError };
