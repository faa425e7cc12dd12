/**
 * Error construction for the registry client: turns fetch failures and non-2xx
 * answers into OciErrors that say what went wrong and what to do. Messages name
 * hosts, repositories and paths but never credentials, tokens or query strings
 * (upload URLs carry opaque state that means nothing to a reader).
 */
import { errnoCode } from "../lib/index.js";
import { OciError } from "./errors.js";

export const PLAIN_HTTP_HINT =
  "check the registry address and that the registry is running; for a plain-HTTP registry on loopback pass --plain-http";
export const CREDENTIALS_HINT =
  "set AUTONOMY_REGISTRY_USERNAME and AUTONOMY_REGISTRY_PASSWORD to credentials allowed to access this repository";

/** Thrown into fetch's AbortSignal when a request makes no progress for `timeoutMs`. */
export class RequestTimeout extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no response for ${timeoutMs} ms`);
    this.name = "RequestTimeout";
  }
}

/** An AbortSignal that fires with a RequestTimeout after `ms` (and does not keep the process alive). */
export function timeoutSignal(ms: number): AbortSignal {
  const ctl = new AbortController();
  setTimeout(() => ctl.abort(new RequestTimeout(ms)), ms).unref();
  return ctl.signal;
}

/** What a request was about, for messages. */
export interface RequestContext {
  /** `host[:port]` of the server contacted. */
  host: string;
  /** e.g. `GET /v2/agent/manifests/latest`. */
  attempt: string;
  /** The scheme used, so a TLS failure can suggest --plain-http. */
  https: boolean;
}

const MAX_DETAIL = 200;

/** Strips control characters and truncates text that came from a server. */
export function sanitize(text: string, max = MAX_DETAIL): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]+/g, " ").replace(/\s+/g, " ").trim();
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

/** The method and path of a URL, without query (may hold upload state) or credentials. */
export function describeAttempt(method: string, url: URL): string {
  return `${method} ${url.pathname}`;
}

/** Maps an exception thrown by fetch (or by reading a body) to OCI_REGISTRY_UNREACHABLE. */
export function networkError(e: unknown, ctx: RequestContext): OciError {
  if (e instanceof OciError) return e;
  const timeout = timeoutOf(e);
  if (timeout !== undefined) {
    return new OciError(
      "OCI_REGISTRY_UNREACHABLE",
      `registry ${ctx.host} did not answer ${ctx.attempt} within ${timeout} ms`,
      "check that the registry is up and reachable, or raise the timeout",
      { cause: e, details: { host: ctx.host } },
    );
  }
  const code = causeCode(e);
  if (ctx.https && code !== undefined && isTlsCode(code)) {
    return new OciError(
      "OCI_REGISTRY_UNREACHABLE",
      `HTTPS connection to ${ctx.host} failed during ${ctx.attempt} (${code}): the server may speak plain HTTP`,
      "if the registry serves plain HTTP (e.g. a test registry on loopback), pass --plain-http",
      { cause: e, details: { host: ctx.host, errno: code } },
    );
  }
  return new OciError(
    "OCI_REGISTRY_UNREACHABLE",
    `cannot reach registry ${ctx.host} (${ctx.attempt}): ${describeCode(code, e)}`,
    PLAIN_HTTP_HINT,
    { cause: e, details: code === undefined ? { host: ctx.host } : { host: ctx.host, errno: code } },
  );
}

function timeoutOf(e: unknown): number | undefined {
  if (e instanceof RequestTimeout) return e.timeoutMs;
  if (e instanceof Error && e.cause instanceof RequestTimeout) return e.cause.timeoutMs;
  return undefined;
}

/** undici wraps the socket error as `TypeError("fetch failed", { cause })`; happy-eyeballs may nest an AggregateError. */
function causeCode(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let depth = 0; depth < 4 && cur !== undefined && cur !== null; depth++) {
    const code = errnoCode(cur);
    if (code !== undefined) return code;
    if (cur instanceof AggregateError && cur.errors.length > 0) cur = cur.errors[0];
    else cur = cur instanceof Error ? cur.cause : undefined;
  }
  return undefined;
}

function isTlsCode(code: string): boolean {
  return code.startsWith("ERR_SSL_") || code === "EPROTO" || code.startsWith("ERR_TLS_");
}

const CODE_WORDS: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "host name not found (DNS)",
  EAI_AGAIN: "DNS lookup failed (temporary)",
  ETIMEDOUT: "connection timed out",
  ECONNRESET: "connection reset by the server",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  UND_ERR_CONNECT_TIMEOUT: "connection timed out",
  UND_ERR_SOCKET: "the connection closed unexpectedly",
};

function describeCode(code: string | undefined, e: unknown): string {
  if (code !== undefined) return CODE_WORDS[code] ?? `network error ${sanitize(code, 40)}`;
  // No errno (e.g. fetch's own "bad port"): the innermost message is the best we have.
  let cur: unknown = e;
  while (cur instanceof Error && cur.cause instanceof Error) cur = cur.cause;
  return cur instanceof Error && cur.message ? `network error: ${sanitize(cur.message, 100)}` : "network error";
}

/** The first `{code, message}` of a distribution-spec error body, sanitised. */
export function registryErrorSummary(body: Uint8Array): string | undefined {
  if (body.length === 0) return undefined;
  const text = new TextDecoder().decode(body);
  try {
    const parsed = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    const first = Array.isArray(parsed.errors) ? parsed.errors[0] : undefined;
    if (first) {
      const code = typeof first.code === "string" ? first.code : "UNKNOWN";
      const message = typeof first.message === "string" ? first.message : "";
      return sanitize(message ? `${code}: ${message}` : code);
    }
  } catch {
    // not JSON: fall through to the raw text
  }
  return sanitize(text);
}

/** What a failed request was about: `thing` names the object (e.g. `manifest "latest"`). */
export interface FailureContext {
  /** `host/repository`. */
  location: string;
  /** e.g. `manifest "latest"`, `blob sha256:…`, `blob upload`. */
  thing: string;
  attempt: string;
}

/** Maps a non-2xx answer (other than auth, handled by the transport) to an OciError. */
export function statusError(status: number, body: Uint8Array, ctx: FailureContext): OciError {
  const summary = registryErrorSummary(body);
  const said = summary === undefined ? "" : `: ${summary}`;
  const details = { status, location: ctx.location, ...(summary === undefined ? {} : { registryError: summary }) };
  if (status === 404) {
    return new OciError(
      "OCI_NOT_FOUND",
      `${ctx.thing} not found in ${ctx.location}${said}`,
      "check the repository name and the tag or digest; list the repository's tags to see what it holds",
      { details },
    );
  }
  if (status === 401 || status === 403) return authFailed(`${ctx.location} refused ${ctx.attempt} (HTTP ${status})${said}`, details);
  return new OciError(
    "OCI_REGISTRY_ERROR",
    `registry ${ctx.location} answered HTTP ${status} to ${ctx.attempt} for ${ctx.thing}${said}`,
    status >= 500 ? "the registry failed internally; retry later or check the registry's logs" : "the registry rejected the request; its error code above says why",
    { details },
  );
}

export function authFailed(message: string, details: Record<string, unknown> = {}, cause?: unknown): OciError {
  return new OciError("OCI_AUTH_FAILED", message, CREDENTIALS_HINT, { details, cause });
}

export function digestMismatch(what: string, expected: string, actual: string): OciError {
  return new OciError(
    "OCI_DIGEST_MISMATCH",
    `${what}: expected digest ${expected}, got ${actual}`,
    "the content was altered in storage or in transit; do not use it, and re-push it from a trusted source",
    { details: { expected, actual } },
  );
}
