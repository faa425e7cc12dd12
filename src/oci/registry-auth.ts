/**
 * Registry authentication as the distribution spec and Docker's token spec
 * describe it: try anonymously, and on 401 answer the `WWW-Authenticate`
 * challenge — fetch a bearer token from the realm (scoped, cached per scope) or
 * fall back to HTTP Basic. Credentials and tokens never appear in messages.
 */
import { systemClock } from "../lib/index.js";
import type { Clock } from "../lib/index.js";
import { OciError } from "./errors.js";
import { authFailed, describeAttempt, networkError, registryErrorSummary, sanitize, timeoutSignal } from "./registry-errors.js";
import { readCapped } from "./registry-http.js";

/** One challenge of a `WWW-Authenticate` header: the scheme (lowercased) and its parameters (names lowercased). */
export interface AuthChallenge {
  scheme: string;
  params: Readonly<Record<string, string>>;
}

export interface RegistryCredentials {
  username: string;
  password: string;
}

const MAX_HEADER = 8192;
const MAX_TOKEN_RESPONSE = 1024 * 1024;
const TOKEN_RE = /^[\x21-\x7e]{1,16384}$/;
const TCHAR_RE = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/**
 * Parses a `WWW-Authenticate` header (RFC 9110 §11.6.1) into its challenges,
 * e.g. `Bearer realm="https://auth/token",service="reg",scope="repository:a:pull,push"`.
 * Quoted values may contain commas and escaped quotes. Unparseable pieces are skipped.
 */
export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const s = header.slice(0, MAX_HEADER);
  const out: { scheme: string; params: Record<string, string> }[] = [];
  let i = 0;
  while (i < s.length) {
    i = skip(s, i, /[\s,]/);
    const name = readToken(s, i);
    if (name.length === 0) {
      i++;
      continue;
    }
    i = skip(s, i + name.length, /[ \t]/);
    if (s[i] !== "=") {
      out.push({ scheme: name.toLowerCase(), params: Object.create(null) as Record<string, string> });
      continue;
    }
    i = skip(s, i + 1, /[ \t]/);
    const { value, end } = s[i] === '"' ? readQuoted(s, i) : readBare(s, i);
    i = end;
    const current = out[out.length - 1];
    if (current !== undefined) current.params[name.toLowerCase()] = value;
  }
  return out;
}

function skip(s: string, i: number, re: RegExp): number {
  while (i < s.length && re.test(s.charAt(i))) i++;
  return i;
}

function readToken(s: string, i: number): string {
  let j = i;
  while (j < s.length && TCHAR_RE.test(s.charAt(j))) j++;
  return s.slice(i, j);
}

function readQuoted(s: string, start: number): { value: string; end: number } {
  let value = "";
  let i = start + 1;
  while (i < s.length && s[i] !== '"') {
    if (s[i] === "\\" && i + 1 < s.length) i++;
    value += s.charAt(i);
    i++;
  }
  return { value, end: i + 1 };
}

/** Lenient: some servers send unquoted URLs, which are not RFC tokens. */
function readBare(s: string, start: number): { value: string; end: number } {
  let i = start;
  while (i < s.length && s[i] !== "," && !/\s/.test(s.charAt(i))) i++;
  return { value: s.slice(start, i), end: i };
}

export interface RegistryAuthOptions {
  /** host[:port] of the registry, for messages. */
  registry: string;
  credentials?: RegistryCredentials;
  fetch: typeof fetch;
  timeoutMs: number;
  userAgent: string;
  /** Allow sending credentials to a plain-HTTP token realm (only for --plain-http registries). */
  allowPlainHttpRealm: boolean;
  /** Clock, for token expiry. Default {@link systemClock}. */
  clock?: Clock;
}

interface CachedToken {
  header: string;
  expiresAt: number;
}

/** Default token lifetime when the server does not say (Docker's token spec: 60 s). */
const DEFAULT_TOKEN_SECONDS = 60;

/**
 * Answers registry auth challenges and remembers the answers, so later
 * requests for the same scope send the token up front instead of taking a 401.
 */
export class RegistryAuth {
  readonly #opts: Readonly<RegistryAuthOptions>;
  readonly #tokens = new Map<string, CachedToken>();
  #basic = false;

  constructor(opts: RegistryAuthOptions) {
    this.#opts = Object.freeze({ ...opts });
  }

  /** The Authorization header to send preemptively for `scope`, if one was learnt. */
  cachedHeader(scope: string): string | undefined {
    if (this.#basic) return this.#basicHeader();
    const cached = this.#tokens.get(scope);
    if (cached === undefined) return undefined;
    if (cached.expiresAt > this.#now()) return cached.header;
    this.#tokens.delete(scope);
    return undefined;
  }

  /** Answers a 401: returns the Authorization header to retry with, or throws OCI_AUTH_FAILED. */
  async respond(wwwAuthenticate: string | null, scope: string): Promise<string> {
    const challenges = parseWwwAuthenticate(wwwAuthenticate ?? "");
    const bearer = challenges.find((c) => c.scheme === "bearer");
    if (bearer !== undefined) return this.#bearer(bearer, scope);
    if (challenges.some((c) => c.scheme === "basic")) {
      const header = this.#basicHeader();
      if (header === undefined) throw authFailed(`registry ${this.#opts.registry} requires credentials (Basic auth) for ${scope}`, { scope });
      this.#basic = true;
      return header;
    }
    const schemes = challenges.map((c) => sanitize(c.scheme, 20)).join(", ") || "none";
    throw authFailed(`registry ${this.#opts.registry} asked for authentication with an unsupported scheme (${schemes})`, { scope });
  }

  #basicHeader(): string | undefined {
    const c = this.#opts.credentials;
    if (c === undefined) return undefined;
    return `Basic ${Buffer.from(`${c.username}:${c.password}`, "utf8").toString("base64")}`;
  }

  #now(): number {
    return (this.#opts.clock ?? systemClock).now();
  }

  async #bearer(challenge: AuthChallenge, scope: string): Promise<string> {
    const realm = this.#realm(challenge);
    const url = new URL(realm);
    const service = challenge.params.service;
    if (service !== undefined) url.searchParams.set("service", service);
    for (const s of scopesToAsk(challenge, scope)) url.searchParams.append("scope", s);
    const { token, seconds } = await this.#fetchToken(url, scope);
    const header = `Bearer ${token}`;
    // Refresh a little early so a request never leaves with a token about to expire.
    const lifetime = seconds > 20 ? seconds - 10 : seconds / 2;
    this.#tokens.set(scope, { header, expiresAt: this.#now() + lifetime * 1000 });
    return header;
  }

  #realm(challenge: AuthChallenge): string {
    const realm = challenge.params.realm;
    let url: URL | undefined;
    try {
      url = realm === undefined ? undefined : new URL(realm);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== "https:" && url.protocol !== "http:")) {
      throw authFailed(`registry ${this.#opts.registry} sent a bearer challenge without a usable realm URL`);
    }
    if (url.protocol === "http:" && this.#opts.credentials !== undefined && !this.#opts.allowPlainHttpRealm) {
      // Basic credentials over plain HTTP would be readable by anyone on the path.
      throw authFailed(`refusing to send credentials to the plain-HTTP token server ${url.host}`, { realm: `${url.origin}${url.pathname}` });
    }
    return url.href;
  }

  async #fetchToken(url: URL, scope: string): Promise<{ token: string; seconds: number }> {
    const headers: Record<string, string> = { "user-agent": this.#opts.userAgent, accept: "application/json" };
    const basic = this.#basicHeader();
    if (basic !== undefined) headers.authorization = basic;
    const ctx = { host: url.host, attempt: describeAttempt("GET", url), https: url.protocol === "https:" };
    let body: Uint8Array;
    let status: number;
    try {
      // "manual": a redirect would carry our Basic credentials to wherever it points.
      const res = await this.#opts.fetch(url, { headers, redirect: "manual", signal: timeoutSignal(this.#opts.timeoutMs) });
      status = res.status;
      body = await readCapped(res, MAX_TOKEN_RESPONSE);
    } catch (e) {
      throw networkError(e, ctx);
    }
    if (status !== 200) throw this.#tokenRefused(url, status, body, scope);
    return parseTokenResponse(body, url);
  }

  #tokenRefused(url: URL, status: number, body: Uint8Array, scope: string): OciError {
    const who = this.#opts.credentials === undefined ? "anonymous access" : "the credentials";
    const said = registryErrorSummary(body);
    const details = { status, scope, realm: `${url.origin}${url.pathname}` };
    if (status === 401 || status === 403) {
      return authFailed(`token server ${url.host} refused ${who} for ${scope} (HTTP ${status})`, details);
    }
    return new OciError(
      "OCI_REGISTRY_ERROR",
      `token server ${url.host} answered HTTP ${status} for ${scope}${said === undefined ? "" : `: ${said}`}`,
      "check that the registry's token service is healthy",
      { details },
    );
  }
}

/** The registry's requested scope(s) plus ours, so one token serves this request and the ones like it. */
function scopesToAsk(challenge: AuthChallenge, ours: string): string[] {
  const theirs = (challenge.params.scope ?? "").split(" ").filter((s) => s.length > 0);
  return [...new Set([...theirs, ours])];
}

function parseTokenResponse(body: Uint8Array, url: URL): { token: string; seconds: number } {
  let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
  try {
    parsed = JSON.parse(new TextDecoder().decode(body)) as typeof parsed;
  } catch (e) {
    throw authFailed(`token server ${url.host} answered with something that is not JSON`, {}, e);
  }
  const token = typeof parsed.token === "string" ? parsed.token : parsed.access_token;
  if (typeof token !== "string" || !TOKEN_RE.test(token)) {
    throw authFailed(`token server ${url.host} answered without a usable token`);
  }
  const e = parsed.expires_in;
  const seconds = typeof e === "number" && Number.isFinite(e) && e > 0 ? e : DEFAULT_TOKEN_SECONDS;
  return { token, seconds };
}
