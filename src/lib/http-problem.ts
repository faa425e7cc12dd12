import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { AutonomyError, ExitCodes } from "./errors.js";

/**
 * One error → HTTP mapping for every server (runtime, control plane, edge
 * daemon): RFC 9457 problem details carrying our stable `code`. A server's
 * contract bodies (the tool call's decision bodies, MCP's JSON-RPC errors)
 * render the same {@link Problem} in their own shape; everything else answers
 * `application/problem+json`.
 */
export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** Codes of requests refused before any domain code ran; docs/errors.md lists each. */
export const HTTP_PROBLEM_CODES = ["REQUEST_INVALID", "REQUEST_TOO_LARGE", "MEDIA_TYPE_UNSUPPORTED", "METHOD_NOT_ALLOWED", "NOT_FOUND", "INTERNAL"] as const;
export type HttpProblemCode = (typeof HTTP_PROBLEM_CODES)[number];

/** An RFC 9457 problem details object plus our stable `code` (an extension member). */
export interface Problem {
  /** `urn:autonomyops:error:<code>`: a stable identifier, not a page to fetch. */
  readonly type: string;
  /** Short summary of the problem type; the same for every occurrence of a code. */
  readonly title: string;
  readonly status: number;
  /** What went wrong in this occurrence. Never a raw driver or stack message for a 5xx. */
  readonly detail: string;
  readonly code: string;
  /** What to do about it (our errors' `hint`), when known. */
  readonly hint?: string;
}

/** Options of {@link problemFromError} and the {@link problemDetails} plugin. */
export interface ProblemOptions {
  /**
   * The HTTP status of a domain error (an {@link AutonomyError}); `undefined`
   * falls back to the exit-code rule: usage → 400, verification → 422,
   * anything else → 500 (its message is then not sent).
   */
  statusOf?: (e: AutonomyError) => number | undefined;
  /** Largest accepted body, named in the 413 detail. */
  bodyLimit?: number;
  /**
   * The {@link problemDetails} plugin's error handler passes every error through
   * this first (e.g. the control plane turns a busy-store driver error into its
   * 503 domain error); it may also set headers on the reply (Retry-After).
   */
  mapError?: (err: unknown, reply: FastifyReply) => unknown;
}

const TITLES: Readonly<Record<HttpProblemCode, string>> = {
  REQUEST_INVALID: "Malformed request",
  REQUEST_TOO_LARGE: "Request body too large",
  MEDIA_TYPE_UNSUPPORTED: "Unsupported media type",
  METHOD_NOT_ALLOWED: "Method not allowed",
  NOT_FOUND: "Not found",
  INTERNAL: "Internal error",
};

const INTERNAL_DETAIL = "internal error; nothing was changed by this request (see the server log)";

/** The problem for one of the request-level codes. */
export function problem(code: HttpProblemCode, status: number, detail: string): Problem {
  return { type: problemType(code), title: TITLES[code], status, detail, code };
}

/** The `type` URI of a code. */
export function problemType(code: string): string {
  return `urn:autonomyops:error:${code}`;
}

/**
 * Maps anything a handler or Fastify threw to a {@link Problem}: Fastify's own
 * request errors (validation, body limit, media type, bad JSON) to the
 * request codes, an {@link AutonomyError} to its code and status, anything
 * else to a 500 `INTERNAL` whose message is not forwarded.
 */
export function problemFromError(err: unknown, opts: ProblemOptions = {}): Problem {
  // instanceof narrows to AutonomyError<any>; every code is a string.
  if (err instanceof AutonomyError) return domainProblem(err as AutonomyError, opts);
  const e = (typeof err === "object" && err !== null ? err : {}) as { statusCode?: unknown; message?: unknown; code?: unknown };
  const status = typeof e.statusCode === "number" && e.statusCode >= 400 && e.statusCode < 500 ? e.statusCode : 500;
  if (status === 500) return problem("INTERNAL", 500, INTERNAL_DETAIL);
  if (status === 413) return problem("REQUEST_TOO_LARGE", 413, opts.bodyLimit !== undefined ? `request body exceeds ${opts.bodyLimit} bytes` : "request body too large");
  if (status === 415) return problem("MEDIA_TYPE_UNSUPPORTED", 415, "send the body as application/json");
  if (status === 404) return problem("NOT_FOUND", 404, "no such resource");
  if (status === 405) return problem("METHOD_NOT_ALLOWED", 405, "method not allowed on this resource");
  // Only Fastify's own request errors (FST_*: schema, bad JSON) are ours to explain; any
  // other error's text is unknown and may name paths or secrets, so it is not echoed.
  const fastify = typeof e.code === "string" && e.code.startsWith("FST_") && typeof e.message === "string" && e.message.length > 0;
  return problem("REQUEST_INVALID", 400, fastify ? `malformed request: ${String(e.message)}` : "malformed request");
}

function domainProblem(err: AutonomyError, opts: ProblemOptions): Problem {
  const status = opts.statusOf?.(err) ?? (err.exitCode === ExitCodes.usage ? 400 : err.exitCode === ExitCodes.verification ? 422 : 500);
  // A 5xx keeps the stable code (clients match on it) but not the message: it may name server paths.
  const detail = status >= 500 ? INTERNAL_DETAIL : err.message;
  return { type: problemType(err.code), title: err.name, status, detail, code: err.code, ...(status < 500 ? { hint: err.hint } : {}) };
}

/** Sends a problem as `application/problem+json`. */
export function sendProblem(reply: FastifyReply, p: Problem): FastifyReply {
  return reply.code(p.status).type(PROBLEM_CONTENT_TYPE).send(p);
}

/** The methods a 405 may list in its Allow header. */
const ROUTE_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"] as const;

/**
 * Fastify plugin: the error handler and the not-found handler of the context
 * that registers it answer with problem details. Register it first on the
 * app; an API area with a contract shape of its own (see the runtime's
 * `/v1/tool`) sets its own error handler inside its plugin, built on
 * {@link problemFromError} so the codes stay the same.
 *
 * ### Examples
 * ```ts
 * const app = Fastify();
 * await app.register(problemDetails, { bodyLimit: 1024 * 1024 });
 * ```
 */
export function problemDetails(app: FastifyInstance, opts: ProblemOptions): Promise<void> {
  app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const p = problemFromError(opts.mapError ? opts.mapError(err, reply) : err, opts);
    if (p.status >= 500) req.log.error({ err }, "request failed");
    return sendProblem(reply, p);
  });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split("?")[0] ?? "";
    // A known path asked with a method it does not serve is a 405 naming the ones it does
    // (RFC 9110 §15.5.6), not a 404. Static paths only: hasRoute matches route patterns.
    const allow = ROUTE_METHODS.filter((method) => method !== req.method && app.hasRoute({ url: path, method }));
    if (allow.length > 0) {
      void reply.header("allow", allow.join(", "));
      return sendProblem(reply, problem("METHOD_NOT_ALLOWED", 405, `${req.method} is not allowed on ${path}; use ${allow.join(" or ")}`));
    }
    return sendProblem(reply, problem("NOT_FOUND", 404, `no route ${req.method} ${path}`));
  });
  return Promise.resolve();
}
// Not encapsulated: the handlers apply to the context that registers the plugin
// (what fastify-plugin does, without the dependency).
Object.assign(problemDetails, { [Symbol.for("skip-override")]: true, [Symbol.for("fastify.display-name")]: "problemDetails" });
