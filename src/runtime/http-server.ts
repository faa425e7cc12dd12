import Fastify from "fastify";
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from "fastify";
import type { IncomingHttpHeaders } from "node:http";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { PROBLEM_CONTENT_TYPE, RUNTIME_VERSION, problemDetails, problemFromError } from "../lib/index.js";
import type { AutonomyError, HttpProblemCode } from "../lib/index.js";
import type { TokenCheck } from "../node/index.js";
import { faithfulJsonBodies } from "./faithful-body.js";
import type { RuntimeErrorCode } from "./errors.js";
import { certificateNames, hostAllowed } from "./host-guard.js";
import { createMcpServer } from "./mcp-server.js";
import type { CallTransport, ToolCallInterceptor } from "./mcp-server.js";
import { RuntimeError } from "./errors.js";
import { asToolRegistry } from "./tools/registry.js";
import type { ToolRegistry, ToolSource } from "./tools/registry.js";
import type { Caller, InterceptResult, PolicySource } from "./types.js";

/** Checks a presented bearer token (the runtime's `TokenVerifier` over `{state_root}/auth/tokens.json`). */
export interface CallerAuth {
  check(token: string): Promise<TokenCheck>;
}

/** Options of {@link createToolServer}. */
export interface ToolServerOptions {
  /**
   * Who may call: every request to `/v1/tool`, `/v1/status` and `/mcp` needs
   * `Authorization: Bearer <token>`, and the token's agent is the Cedar
   * principal of its calls. There is no unauthenticated mode.
   */
  auth: CallerAuth;
  /** Serve HTTPS with this PEM certificate and key; the certificate's names (subjectAltName) are accepted in the Host header. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Decides every call and runs the tool only when allowed (the runtime's `Interceptor`). */
  interceptor: ToolCallInterceptor;
  tools: ToolSource;
  /**
   * The policy in force, for `/readyz`, `/v1/status` and the `policy_ref` of
   * requests refused before any decision (malformed bodies). Pass the same
   * source the interceptor reads. Without it the server reports "none".
   */
  policy?: PolicySource;
  /** Serve MCP Streamable HTTP at `/mcp` (stateless). Default true. */
  mcp?: boolean;
  /** Fastify logger options, or a pino-compatible logger instance. Default: off. */
  logger?: FastifyServerOptions["logger"] | FastifyBaseLogger;
  /** Browser origins allowed to call; any request carrying another `Origin` is refused (DNS-rebinding guard). Default none. */
  allowedOrigins?: readonly string[];
  /** The node's telemetry state for `/v1/status` (WAL and exporter), when the runtime has one. */
  telemetry?: () => Record<string, unknown>;
}

/** Request-level error codes (the request never reached a decision). Tool errors carry RuntimeError codes. */
export type RequestErrorCode = Exclude<HttpProblemCode, "NOT_FOUND">;

/** Counts of decisions made through this server. */
export interface DecisionCounts {
  allow: number;
  deny: number;
  /** Allowed, but the tool failed (bad params, refused target, unknown tool, upstream down). */
  failed: number;
}

const MiB = 1024 * 1024;
const NO_POLICY = "none";

/** HTTP status of the runtime's request-level refusals (anything else: problemFromError's rule). */
const REFUSAL_STATUS: Partial<Record<RuntimeErrorCode, number>> = { AUTH_REQUIRED: 401, AUTH_TOKEN_REVOKED: 403, HOST_NOT_ALLOWED: 421, HOST_HEADER_INVALID: 400, ORIGIN_NOT_ALLOWED: 403 };
const statusOf = (e: AutonomyError): number | undefined => (e instanceof RuntimeError ? REFUSAL_STATUS[e.code] : undefined);

const errorSchema = {
  type: "object",
  required: ["code", "message"],
  properties: { code: { type: "string" }, message: { type: "string" }, path: { type: "string" } },
  additionalProperties: false,
} as const;
const refusalSchema = {
  type: "object",
  required: ["decision", "policy_ref", "error"],
  properties: { decision: { type: "string", enum: ["allow", "deny"] }, policy_ref: { type: "string" }, error: errorSchema },
  additionalProperties: false,
} as const;
const countsSchema = {
  type: "object",
  required: ["allow", "deny", "failed"],
  properties: { allow: { type: "integer" }, deny: { type: "integer" }, failed: { type: "integer" } },
  additionalProperties: false,
} as const;

const toolRouteSchema = {
  body: {
    type: "object",
    required: ["kind"],
    properties: {
      kind: { type: "string", minLength: 1, maxLength: 256 },
      params: { type: "object", default: {} },
    },
    additionalProperties: false,
  },
  response: {
    200: {
      type: "object",
      required: ["decision", "policy_ref", "output"],
      properties: { decision: { type: "string", enum: ["allow"] }, policy_ref: { type: "string" }, output: {} },
      additionalProperties: false,
    },
    403: {
      type: "object",
      required: ["decision", "policy_ref", "reason", "policies"],
      properties: {
        decision: { type: "string", enum: ["deny"] },
        policy_ref: { type: "string" },
        reason: { type: "string" },
        policies: { type: "array", items: { type: "string" } },
      },
      additionalProperties: false,
    },
    "4xx": refusalSchema,
    "5xx": refusalSchema,
  },
} as const;

interface ToolBody {
  kind: string;
  params: Record<string, unknown>;
}

/**
 * The runtime's tool server: `POST /v1/tool` (the original's contract: 200
 * allowed and ran, 403 denied and never ran, 400 allowed but failed or
 * malformed, 405 any other method; every body carries `decision` and
 * `policy_ref`), `/healthz`, `/readyz`, `/v1/status`, and MCP Streamable HTTP
 * at `/mcp`. Every call, over either transport, goes through the interceptor.
 *
 * `/mcp` is stateless: each POST gets a fresh MCP server and transport (no
 * session id, JSON responses, no SSE); GET and DELETE answer 405. A tool call
 * needs nothing from an earlier request, so there is no session state to bound
 * or to lose on restart, and any replica can answer.
 *
 * Before any of that: the Host header must name this server (DNS-rebinding
 * guard, every route), and `/v1/tool`, `/v1/status` and `/mcp` need a bearer
 * token (401 without or with an unknown one, 403 when revoked); `/healthz` and
 * `/readyz` stay open for supervisors and say nothing a caller could use.
 *
 * ### Examples
 * ```ts
 * const app = createToolServer({ interceptor, tools: builtinTools(), policy: live.current, auth: new TokenVerifier(stateRoot) });
 * await app.listen({ host: "127.0.0.1", port: 7777 });
 * ```
 */
export function createToolServer(opts: ToolServerOptions): FastifyInstance {
  const tools = asToolRegistry(opts.tools);
  const policy: PolicySource = opts.policy ?? (() => undefined);
  const policyRef = (): string => policy()?.ref ?? NO_POLICY;
  const origins: ReadonlySet<string> = new Set(opts.allowedOrigins ?? []);
  const originRefused = (req: FastifyRequest): boolean => {
    const origin = req.headers.origin;
    return origin !== undefined && !origins.has(origin);
  };
  const counter = new DecisionCounter();
  const gate: ToolCallInterceptor = {
    async call(call, tool, transport, signal, caller) {
      const r = await opts.interceptor.call(call, tool, transport, signal, caller);
      counter.count(transport, r);
      return r;
    },
  };

  const logger = opts.logger ?? false;
  const isInstance = typeof logger === "object" && typeof (logger as Partial<FastifyBaseLogger>).child === "function";
  const serverNames = opts.tls ? certificateNames(opts.tls.cert) : [];
  // With TLS the app is an HTTPS server; the certificate's names are what a Host header may say besides loopback.
  const app = Fastify({
    ...(opts.tls ? { https: { cert: opts.tls.cert, key: opts.tls.key } } : {}),
    bodyLimit: MiB,
    ...(isInstance ? { loggerInstance: logger as FastifyBaseLogger } : { logger: logger as FastifyServerOptions["logger"] }),
    // The body is attacker-controlled: no type coercion, no silent removal of unknown fields.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false } },
  });

  // Bodies are JSON only: without Fastify's default text/plain parser a text body is a
  // 415 MEDIA_TYPE_UNSUPPORTED (DESIGN §6), not a string that fails the schema as a 400.
  app.removeContentTypeParser("text/plain");
  // Duplicate keys and depth bombs are refused (400, path named), never resolved by JSON.parse's last-one-wins.
  faithfulJsonBodies(app);

  // One plugin per API area, registered in order; problem details first, so
  // every area without a contract shape of its own answers errors with them.
  void app.register(problemDetails, { bodyLimit: MiB, statusOf });
  // Every route, before anything else: a request whose Host is not this server is a DNS-rebinding attempt.
  // The bound address is fixed once listening (port 0 becomes the real port): read it once, not per request.
  let bound: ReturnType<typeof app.server.address> = null;
  app.addHook("onRequest", (req, reply, done) => {
    bound ??= app.server.address();
    const hostOpts = { serverNames, secure: opts.tls !== undefined };
    // Two Host headers: Node keeps the first, a proxy in front may have judged the other.
    if (headerCount(req.raw.rawHeaders, "host") > 1) {
      return void refuseRequest(reply, new RuntimeError("HOST_HEADER_INVALID", "a request may carry one Host header; this one carries several"), policyRef, req.url);
    }
    // An absolute-form target (`POST http://evil.example/v1/tool`): its host is the request's host (RFC 9112 §3.2.2).
    const target = absoluteTargetHost(req.raw.url ?? "");
    const hostOk = hostAllowed(req.headers.host, bound, hostOpts) && (target === undefined || hostAllowed(target, bound, hostOpts));
    if (hostOk) return done();
    // The Host is not echoed: it is the attacker's text.
    void refuseRequest(reply, new RuntimeError("HOST_NOT_ALLOWED", "requests for this Host are refused: this server answers to its own address (loopback, or its TLS certificate's names) and port only"), policyRef, req.url);
  });
  const callers = new WeakMap<FastifyRequest, Caller>();
  const authenticate = bearerGuard(opts.auth, callers, policyRef);
  const callerOf = (req: FastifyRequest): Caller => {
    const c = callers.get(req);
    // The guard runs first on every route that calls a tool; no caller here is a wiring bug, never a default identity.
    if (!c) throw new RuntimeError("AUTH_REQUIRED", "the request was not authenticated");
    return c;
  };
  void app.register(healthRoutes, { policy });
  void app.register(statusRoutes, { policy, tools, counter, mcp: opts.mcp !== false, originRefused, authenticate, policyRef, ...(opts.telemetry ? { telemetry: opts.telemetry } : {}) });
  void app.register(toolRoutes, { gate, tools, policyRef, originRefused, authenticate, callerOf });
  if (opts.mcp !== false) void app.register(mcpRoutes, { gate, tools, originRefused, authenticate, callerOf, policyRef });
  return app;
}

type Guard = (req: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>;

/**
 * The bearer-token check of one API area (an `onRequest` hook): no token or
 * an unknown one → 401 with `WWW-Authenticate: Bearer`; a revoked one → 403.
 * A known token's agent and id are remembered for the request's calls.
 */
function bearerGuard(auth: CallerAuth, callers: WeakMap<FastifyRequest, Caller>, policyRef: () => string): Guard {
  return async (req, reply) => {
    const m = /^Bearer[ ]+([^\s]+)[ ]*$/i.exec(req.headers.authorization ?? "");
    const token = m?.[1];
    const challenge = (error?: string): FastifyReply => reply.header("www-authenticate", `Bearer realm="autonomy-runtime"${error ? `, error="${error}"` : ""}`);
    if (token === undefined) {
      return refuseRequest(challenge(), new RuntimeError("AUTH_REQUIRED", `${req.url.split("?")[0] ?? ""} needs a bearer token (Authorization: Bearer <token>)`), policyRef, req.url);
    }
    const r = await auth.check(token);
    if (r.kind === "unknown") return refuseRequest(challenge("invalid_token"), new RuntimeError("AUTH_REQUIRED", "the bearer token is not known to this runtime"), policyRef, req.url);
    if (r.kind === "revoked") return refuseRequest(reply, new RuntimeError("AUTH_TOKEN_REVOKED", `token ${r.tokenId} (agent ${r.agentId}) was revoked`), policyRef, req.url);
    callers.set(req, { agentId: r.agentId, tokenId: r.tokenId });
    return undefined;
  };
}

/**
 * A request refused before any decision (wrong Host, no or bad token): RFC
 * 9457 problem details; on `/v1/tool` also `decision: "deny"` and `policy_ref`
 * (extension members), so its contract — every body says both — holds.
 * Sent pre-serialised: the area's response schemas describe its own bodies.
 */
function refuseRequest(reply: FastifyReply, err: RuntimeError, policyRef: () => string, url: string): FastifyReply {
  const p = problemFromError(err, { statusOf });
  const body = url.split("?")[0] === "/v1/tool" ? { ...p, decision: "deny", policy_ref: policyRef() } : p;
  return reply.code(p.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
}

/** How many times a header appears in a request (Node's `headers` keeps only the first Host). */
function headerCount(rawHeaders: readonly string[], name: string): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]?.toLowerCase() === name) n++;
  return n;
}

/** The `host[:port]` of an absolute-form request target, "" when it has none, undefined for the usual origin form (`/v1/tool`). */
function absoluteTargetHost(url: string): string | undefined {
  if (url.startsWith("/") || url === "*") return undefined;
  try {
    return new URL(url).host;
  } catch {
    return ""; // not a URL: refused like a missing Host
  }
}

/** `/healthz` (the process answers) and `/readyz` (a policy is loaded). */
function healthRoutes(app: FastifyInstance, deps: { policy: PolicySource }): Promise<void> {
  const { policy } = deps;
  app.get("/healthz", { schema: { response: { 200: { type: "object", properties: { status: { type: "string" } } } } } }, () => ({ status: "ok" }));

  app.get(
    "/readyz",
    {
      schema: {
        response: {
          200: { type: "object", properties: { ready: { type: "boolean" }, policy_ref: { type: "string" } } },
          503: { type: "object", properties: { ready: { type: "boolean" }, reason: { type: "string" } } },
        },
      },
    },
    (_req, reply) => {
      const p = policy();
      if (p) return reply.code(200).send({ ready: true, policy_ref: p.ref });
      return reply.code(503).send({ ready: false, reason: "no policy loaded: every tool call is denied until one is" });
    },
  );
  return Promise.resolve();
}

interface StatusDeps {
  policy: PolicySource;
  tools: ToolRegistry;
  counter: DecisionCounter;
  mcp: boolean;
  telemetry?: () => Record<string, unknown>;
  originRefused: (req: FastifyRequest) => boolean;
  authenticate: Guard;
  policyRef: () => string;
}

/** `/v1/status`: version, policy in force, tools, transports, decision counts, telemetry. Behind the Origin guard and a bearer token: it names the policy, tools and exporter. */
function statusRoutes(app: FastifyInstance, deps: StatusDeps): Promise<void> {
  const { policy, tools, counter } = deps;
  app.addHook("onRequest", async (req, reply) => {
    if (deps.originRefused(req)) return refuseRequest(reply, new RuntimeError("ORIGIN_NOT_ALLOWED", `requests from origin ${JSON.stringify(req.headers.origin)} are refused`), deps.policyRef, req.url);
    return deps.authenticate(req, reply);
  });
  app.get(
    "/v1/status",
    {
      schema: {
        response: {
          200: {
            type: "object",
            properties: {
              version: { type: "string" },
              policy_ref: { type: "string" },
              policy_loaded: { type: "boolean" },
              policy_count: { type: "integer" },
              tools: { type: "array", items: { type: "object", properties: { name: { type: "string" }, description: { type: "string" } } } },
              transports: { type: "array", items: { type: "string" } },
              decisions: {
                type: "object",
                properties: { ...countsSchema.properties, by_transport: { type: "object", additionalProperties: countsSchema } },
              },
              telemetry: { type: "object", additionalProperties: true },
            },
          },
        },
      },
    },
    () => {
      const p = policy();
      return {
        version: RUNTIME_VERSION,
        policy_ref: p?.ref ?? NO_POLICY,
        policy_loaded: p !== undefined,
        policy_count: p?.engine.policyCount ?? 0,
        tools: tools.list().map((t) => ({ name: t.name, description: t.description })),
        transports: deps.mcp ? ["http", "mcp"] : ["http"],
        decisions: counter.snapshot(),
        ...(deps.telemetry ? { telemetry: deps.telemetry() } : {}),
      };
    },
  );
  return Promise.resolve();
}

interface RouteDeps {
  gate: ToolCallInterceptor;
  tools: ToolRegistry;
  originRefused: (req: FastifyRequest) => boolean;
  authenticate: Guard;
  callerOf: (req: FastifyRequest) => Caller;
}

/** `/v1/tool`: its own error handler so even a refused request answers with `decision` and `policy_ref` (DESIGN §6 "Tool call"). */
function toolRoutes(app: FastifyInstance, deps: RouteDeps & { policyRef: () => string }): Promise<void> {
  const { gate, tools, policyRef, originRefused, callerOf } = deps;
  const refuse = (reply: FastifyReply, status: number, code: string, message: string, path?: string): FastifyReply =>
    reply.code(status).send({ decision: "deny", policy_ref: policyRef(), error: { code, message, ...(path !== undefined ? { path } : {}) } });

  app.setErrorHandler((err: unknown, req, reply) => {
    const { status, code, message, path } = requestError(err);
    if (status >= 500) req.log.error({ err }, "tool request failed");
    return refuse(reply, status, code, message, path);
  });

  app.addHook("onRequest", (req, reply, done) => {
    if (originRefused(req)) {
      // A problem document that also reads as a deny (the policy was never asked). Sent pre-serialised:
      // on the 405 route (GET, OPTIONS, DELETE …) no response schema describes it, which made it a 500.
      const reason = `requests from origin ${JSON.stringify(req.headers.origin)} are refused`;
      const p = problemFromError(new RuntimeError("ORIGIN_NOT_ALLOWED", reason), { statusOf });
      void reply.code(p.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify({ ...p, decision: "deny", policy_ref: policyRef(), reason, policies: [] }));
      return;
    }
    done();
  });
  app.addHook("onRequest", deps.authenticate);

  app.post<{ Body: ToolBody }>("/v1/tool", { schema: toolRouteSchema }, async (req, reply) => {
    const { kind, params } = req.body;
    // A client that disconnects before the answer cancels the call (tool.shell then kills its process group).
    const gone = new AbortController();
    reply.raw.once("close", () => void (reply.raw.writableFinished || gone.abort()));
    const r = await gate.call({ kind, params }, tools.get(kind), "http", gone.signal, callerOf(req));
    if (r.decision === "deny") return reply.code(403).send({ decision: "deny", policy_ref: r.policy_ref, reason: r.reason, policies: r.policies });
    if (!r.ok) return reply.code(400).send({ decision: "allow", policy_ref: r.policy_ref, error: r.error });
    return reply.code(200).send({ decision: "allow", policy_ref: r.policy_ref, output: r.output ?? null });
  });

  // Every other method: 405 before the body is even read.
  app.route({
    method: ["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"],
    url: "/v1/tool",
    schema: { response: { "4xx": refusalSchema } },
    // Answering from a hook ends the request there (done is deliberately not called).
    onRequest: (req, reply) => {
      void refuse(reply.header("allow", "POST"), 405, "METHOD_NOT_ALLOWED", `${req.method} is not allowed on /v1/tool; use POST`);
    },
    handler: (_req, reply) => reply,
  });
  return Promise.resolve();
}

/** `/mcp`: MCP Streamable HTTP, stateless, JSON responses; errors answer as JSON-RPC (the MCP contract). */
function mcpRoutes(app: FastifyInstance, deps: RouteDeps & { policyRef: () => string }): Promise<void> {
  const { gate, tools, originRefused, callerOf } = deps;
  const rpcError = (reply: FastifyReply, status: number, code: number, message: string): FastifyReply =>
    reply.code(status).type("application/json").send({ jsonrpc: "2.0", error: { code, message }, id: null });

  app.setErrorHandler((err: unknown, req, reply) => {
    const { status, code, message } = requestError(err);
    if (status >= 500) req.log.error({ err }, "mcp request failed");
    const rpcCode = code === "REQUEST_INVALID" ? -32700 : status >= 500 ? -32603 : -32600;
    return rpcError(reply, status, rpcCode, message);
  });

  app.addHook("onRequest", (req, reply, done) => {
    if (originRefused(req)) {
      void rpcError(reply, 403, -32000, `requests from origin ${JSON.stringify(req.headers.origin)} are refused`);
      return;
    }
    done();
  });
  app.addHook("onRequest", deps.authenticate);

  app.post("/mcp", async (req, reply) => {
    const server = createMcpServer({ interceptor: gate, tools, caller: callerOf(req), onInternalError: (err) => req.log.error({ err }, "mcp tool call failed") });
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    await server.connect(transport);
    try {
      const res = await transport.handleRequest(new Request(`http://localhost${req.url}`, { method: "POST", headers: webHeaders(req.headers) }), { parsedBody: req.body });
      reply.code(res.status);
      res.headers.forEach((value, name) => void reply.header(name, value));
      const text = await res.text();
      return reply.send(text === "" ? undefined : text);
    } finally {
      await server.close();
    }
  });

  app.route({
    method: ["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"],
    url: "/mcp",
    onRequest: (_req, reply) => {
      void rpcError(reply.header("allow", "POST"), 405, -32000, "Method not allowed: this MCP endpoint is stateless (no sessions, no server-sent event stream); use POST");
    },
    handler: (_req, reply) => reply,
  });
  return Promise.resolve();
}

function webHeaders(h: IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const [name, value] of Object.entries(h)) {
    if (value === undefined || name.startsWith(":")) continue;
    out.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  return out;
}

/**
 * The one error mapping ({@link problemFromError}) as the tool and MCP routes
 * render it: the request never reached a decision, and a 5xx says the call did
 * not run.
 */
function requestError(err: unknown): { status: number; code: string; message: string; path?: string } {
  const p = problemFromError(err, { bodyLimit: MiB });
  if (p.status >= 500) return { status: p.status, code: p.code, message: "internal error; the call was not run (see the runtime log)" };
  // An input refused as not representable names where (`params.force`).
  const path = err instanceof RuntimeError && typeof err.details["path"] === "string" ? err.details["path"] : undefined;
  return { status: p.status, code: p.code, message: p.detail, ...(path !== undefined ? { path } : {}) };
}

class DecisionCounter {
  readonly #by = new Map<CallTransport, DecisionCounts>();

  count(transport: CallTransport, r: InterceptResult): void {
    let c = this.#by.get(transport);
    if (!c) this.#by.set(transport, (c = { allow: 0, deny: 0, failed: 0 }));
    if (r.decision === "deny") c.deny++;
    else if (r.ok) c.allow++;
    else c.failed++;
  }

  snapshot(): DecisionCounts & { by_transport: Record<string, DecisionCounts> } {
    const total: DecisionCounts = { allow: 0, deny: 0, failed: 0 };
    const by: Record<string, DecisionCounts> = {};
    for (const [t, c] of this.#by) {
      by[t] = { ...c };
      total.allow += c.allow;
      total.deny += c.deny;
      total.failed += c.failed;
    }
    return { ...total, by_transport: by };
  }
}
