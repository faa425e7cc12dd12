import type { z } from "zod";
import { formatProblems, fieldProblems, messageOf, redactUrl, redactUrlsIn, RUNTIME_VERSION } from "../lib/index.js";
import { CpClientError } from "./client-error.js";
import { fetchWithCa } from "./client-https-ca.js";
import type { RouteDecl } from "./routes.js";

/**
 * The transport under {@link CpClient}: one fetch per call with a deadline,
 * the bearer token in a header only, no redirects (a redirect could carry the
 * token elsewhere), a capped response body, and every non-2xx answer turned
 * into a {@link CpClientError}. Response bodies are parsed with the cpapi
 * schemas, never trusted as typed.
 */
export interface HttpCallOptions {
  readonly route: RouteDecl;
  readonly params?: Readonly<Record<string, string>>;
  readonly query?: Readonly<Record<string, string | readonly string[] | undefined>>;
  readonly body?: unknown;
  readonly token?: string | undefined;
  readonly headers?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal | undefined;
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Headers;
  /** The parsed JSON body, or the text when it is not JSON, or undefined when empty. */
  readonly body: unknown;
  readonly text: string;
}

export interface TransportOptions {
  readonly baseUrl: URL;
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;
  /** PEM of a private CA to trust for an https base URL (instead of the public CAs). */
  readonly ca?: string | undefined;
}

/** Builds the URL of a route: `:name` path params are encoded, query values appended (arrays repeat the key). */
export function routeUrl(base: URL, route: RouteDecl, params: Readonly<Record<string, string>> = {}, query: HttpCallOptions["query"] = {}): URL {
  const path = route.url.replace(/:([a-z_]+)/g, (_m, name: string) => {
    const v = params[name];
    if (v === undefined) throw new Error(`route ${route.url}: missing path parameter ${name}`);
    return encodeURIComponent(v);
  });
  const url = new URL(base.pathname.replace(/\/+$/, "") + path, base);
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v === undefined) continue;
    for (const one of typeof v === "string" ? [v] : v) url.searchParams.append(k, one);
  }
  return url;
}

/** One call. Throws {@link CpClientError} CP_REQUEST_FAILED when no answer arrived (refused, reset, timeout). */
export async function httpCall(t: TransportOptions, o: HttpCallOptions): Promise<HttpAnswer> {
  const url = routeUrl(t.baseUrl, o.route, o.params, o.query);
  const what = `${o.route.method} ${redactUrl(url)}`;
  const deadline = AbortSignal.timeout(t.timeoutMs);
  const signal = o.signal ? AbortSignal.any([deadline, o.signal]) : deadline;
  const headers: Record<string, string> = { accept: "application/json, application/problem+json", "user-agent": `autonomy/${RUNTIME_VERSION}`, ...o.headers };
  if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
  if (o.body !== undefined) headers["content-type"] = "application/json";
  try {
    const body = o.body === undefined ? null : JSON.stringify(o.body);
    const res = t.ca !== undefined && url.protocol === "https:"
      ? await fetchWithCa(url, { method: o.route.method, headers, body, signal }, t.ca)
      : await fetch(url, { method: o.route.method, headers, body, redirect: "manual", signal });
    const text = await readCapped(res, t.maxResponseBytes, what);
    return { status: res.status, headers: res.headers, text, body: parseMaybeJson(text) };
  } catch (e) {
    if (e instanceof CpClientError) throw e;
    const why = deadline.aborted ? `no answer within ${t.timeoutMs} ms` : o.signal?.aborted ? "cancelled" : transportReason(e);
    throw new CpClientError("CP_REQUEST_FAILED", `control plane request failed: ${what}: ${why}`, { detail: why, cause: e });
  }
}

/** Node's fetch says "fetch failed" and keeps the reason (ECONNREFUSED, …) in `cause`; URLs in it are redacted. */
function transportReason(e: unknown): string {
  const cause = e instanceof Error && e.cause !== undefined ? e.cause : undefined;
  const code = cause !== null && typeof cause === "object" && "code" in cause && typeof cause.code === "string" ? cause.code : undefined;
  const text = cause !== undefined ? messageOf(cause) : messageOf(e);
  return redactUrlsIn(code !== undefined && !text.includes(code) ? `${code}: ${text}` : text);
}

async function readCapped(res: Response, max: number, what: string): Promise<string> {
  if (res.body === null) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > max) {
      await res.body.cancel().catch(() => undefined);
      throw new CpClientError("CP_RESPONSE_INVALID", `control plane response too large: ${what}: more than ${max} bytes`, { status: res.status, detail: `response body over ${max} bytes` });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function parseMaybeJson(text: string): unknown {
  if (text === "") return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** `Retry-After` as milliseconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3); undefined when absent or unreadable. */
export function retryAfterMs(headers: Headers, nowMs: number): number | undefined {
  const v = headers.get("retry-after")?.trim();
  if (v === undefined || v === "") return undefined;
  if (/^\d{1,10}$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v); // an HTTP date (IMF-fixdate) is not RFC 3339; Date.parse reads it
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** The error for a non-2xx answer: the server's problem details when it sent them. */
export function rejection(route: RouteDecl, a: HttpAnswer, nowMs: number): CpClientError {
  const p = asProblem(a.body);
  const retry = retryAfterMs(a.headers, nowMs);
  const detail = p?.detail ?? (a.status >= 300 && a.status < 400 ? `redirected (${a.status}); the client does not follow redirects` : `HTTP ${a.status} without problem details`);
  const code = p?.code !== undefined ? ` ${p.code}` : "";
  return new CpClientError("CP_REQUEST_REJECTED", `control plane refused ${route.method} ${route.url}: ${a.status}${code}: ${detail}`, {
    status: a.status,
    detail,
    ...(p?.code !== undefined ? { problemCode: p.code } : {}),
    ...(p?.hint !== undefined ? { hint: p.hint } : {}),
    ...(retry !== undefined ? { retryAfterMs: retry } : {}),
  });
}

function asProblem(body: unknown): { code?: string; detail?: string; hint?: string } | undefined {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return undefined;
  const b = body as Record<string, unknown>;
  const str = (v: unknown): string | undefined => (typeof v === "string" && v.length > 0 ? v.slice(0, 2048) : undefined);
  const out = { code: str(b.code), detail: str(b.detail) ?? str(b.title), hint: str(b.hint) };
  return out.code === undefined && out.detail === undefined ? undefined : Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined));
}

/** A 2xx body parsed with its schema; anything else is CP_RESPONSE_INVALID naming the fields. */
export function parseAnswer<S extends z.ZodType>(route: RouteDecl, schema: S, a: HttpAnswer): z.output<S> {
  const r = schema.safeParse(a.body);
  if (r.success) return r.data;
  const detail = typeof a.body === "string" || a.body === undefined ? "the body is not JSON" : formatProblems(fieldProblems(r.error.issues)).slice(0, 1024);
  return throwInvalid(route, a.status, detail);
}

function throwInvalid(route: RouteDecl, status: number, detail: string): never {
  throw new CpClientError("CP_RESPONSE_INVALID", `control plane answered ${route.method} ${route.url} off contract (${status}): ${detail}`, { status, detail });
}
