import { request as httpRequest } from "node:http";
import type { IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { LookupFunction } from "node:net";
import { z } from "zod";
import { guardedLookup, systemResolver } from "./address-guard.js";
import type { Resolver } from "./address-guard.js";
import { RUNTIME_VERSION, messageOf, redactUrl } from "../../lib/index.js";
import { RuntimeError } from "../errors.js";
import type { Tool, ToolCallContext } from "../types.js";
import { defineTool } from "./define-tool.js";

/** Options of {@link httpGetTool}. */
export interface HttpGetOptions {
  /** Host names the tool may reach: an exact host (`api.example.com`, `127.0.0.1`, `[::1]`) or `*.suffix` (subdomains only). */
  allowedDomains: readonly string[];
  /** Whole-call deadline, redirects and body included. Default 10 s. */
  timeoutMs?: number;
  /** Body bytes kept; the rest is dropped and `truncated` set. Default 1 MiB. */
  maxBodyBytes?: number;
  /**
   * Redirects followed. Each hop is a new policy decision (asked through the
   * interceptor's {@link ToolCallContext}, recorded like any decision) and is
   * re-checked against the allow-list and the address guard; https → http is
   * refused. Default 5.
   */
  maxRedirects?: number;
  /**
   * Let allow-listed host *names* resolve to non-public addresses (private,
   * loopback, link-local …). Default false: such a target is refused, and the
   * connection goes to exactly the address that was checked, so DNS rebinding
   * cannot reach the node's network. An allow-listed IP literal is always reachable.
   */
  allowPrivateNetworks?: boolean;
  /** DNS (tests inject one). Default: the system resolver. */
  resolve?: Resolver;
  /** Trusted CA certificates (PEM) for https, replacing Node's default roots (a private PKI; tests). Default: Node's roots. */
  ca?: string | readonly string[];
}

/** What `tool.http_get` returns. */
export interface HttpGetOutput {
  /** The URL finally fetched, after redirects. */
  url: string;
  status: number;
  content_type: string | null;
  /** The body as UTF-8 text, at most `maxBodyBytes` bytes of it. */
  body: string;
  truncated: boolean;
}

const MiB = 1024 * 1024;
const REDIRECTS: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

const HttpGetParams = z.strictObject({
  endpoint: z.string().max(8192).describe("http(s) URL to GET; its host must be on the runtime's allow-list"),
});

/** A compiled allow-list: exact hosts and wildcard suffixes, normalised the way WHATWG URL normalises hosts. */
export class HostAllowList {
  readonly #exact: ReadonlySet<string>;
  readonly #suffixes: readonly string[];

  constructor(entries: readonly string[]) {
    const exact = new Set<string>();
    const suffixes: string[] = [];
    for (const raw of entries) {
      const entry = raw.trim();
      if (entry === "") continue;
      if (entry.startsWith("*.")) suffixes.push(`.${normaliseHost(entry.slice(2), raw)}`);
      else exact.add(normaliseHost(entry, raw));
    }
    this.#exact = exact;
    this.#suffixes = Object.freeze(suffixes);
  }

  /** True when `hostname` (as `URL.hostname` spells it) is allowed. */
  allows(hostname: string): boolean {
    const host = stripDot(hostname.toLowerCase());
    if (this.#exact.has(host)) return true;
    return this.#suffixes.some((s) => host.length > s.length && host.endsWith(s));
  }
}

function stripDot(host: string): string {
  return host.endsWith(".") ? host.slice(0, -1) : host;
}

function normaliseHost(host: string, raw: string): string {
  const bad = (): never => {
    throw new RuntimeError("RUNTIME_CONFIG_INVALID", `allowed domain ${JSON.stringify(raw)} is not a host name, IP address or *.suffix`, {
      hint: "list plain host names such as api.example.com or *.example.com (no scheme, port, path or other wildcards)",
    });
  };
  if (host === "" || /[*/?#@\s]/.test(host)) bad();
  const v6 = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  let parsed: URL;
  try {
    parsed = new URL(`http://${v6}/`);
  } catch {
    return bad();
  }
  if (parsed.port !== "") bad();
  return stripDot(parsed.hostname);
}

/**
 * `tool.http_get` {endpoint} → {url, status, content_type, body, truncated}:
 * GETs an http(s) URL whose host is on the allow-list, following redirects by
 * hand so every hop is re-checked, within a deadline and a body-size bound.
 * Each redirect is a new policy decision through the interceptor's
 * `context` (without one, a redirect is not followed): a hop the policy
 * denies stops the call with TOOL_REDIRECT_DENIED, and a redirect from https
 * to http is refused (TOOL_TARGET_NOT_ALLOWED).
 * A refused target is RuntimeError(TOOL_TARGET_NOT_ALLOWED); a network error
 * or timeout is TOOL_FAILED. A host name must also resolve to public addresses
 * (unless `allowPrivateNetworks`), and the socket connects to the address that
 * was checked (no second DNS lookup to rebind).
 *
 * ### Examples
 * ```ts
 * const tool = httpGetTool({ allowedDomains: ["api.example.com", "*.example.org"] });
 * await tool.run({ endpoint: "https://api.example.com/v1/ping" });
 * ```
 */
export function httpGetTool(opts: HttpGetOptions): Tool {
  const allow = new HostAllowList(opts.allowedDomains);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const maxBody = opts.maxBodyBytes ?? MiB;
  const maxRedirects = opts.maxRedirects ?? 5;
  const lookup = guardedLookup(opts.resolve ?? systemResolver, opts.allowPrivateNetworks ?? false);
  const ca = opts.ca === undefined ? undefined : typeof opts.ca === "string" ? [opts.ca] : [...opts.ca];

  const checkTarget = (endpoint: string, base?: URL): URL => {
    let url: URL;
    try {
      url = base ? new URL(endpoint, base) : new URL(endpoint);
    } catch {
      if (base) throw new RuntimeError("TOOL_FAILED", `tool.http_get: ${redactUrl(base)} redirected to something that is not a URL`);
      throw new RuntimeError("TOOL_PARAMS_INVALID", `tool.http_get: invalid params: endpoint: not a URL`, {
        details: { tool: "tool.http_get", problems: [{ field: "endpoint", problem: "not a URL" }] },
      });
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new RuntimeError("TOOL_TARGET_NOT_ALLOWED", `tool.http_get: scheme ${url.protocol} is not allowed (only http and https)`);
    }
    if (base?.protocol === "https:" && url.protocol === "http:") {
      throw new RuntimeError("TOOL_TARGET_NOT_ALLOWED", `tool.http_get: ${redactUrl(base)} redirected from https to http (${redactUrl(url)}); a downgrade is refused`, { details: { location: redactUrl(url) } });
    }
    // Before the allow-list (which strips the dot): a first hop or a redirect hop to `localhost.` is refused, never judged as another host.
    const dotless = dotlessHref(url);
    if (dotless !== undefined) throw trailingDot(url.href, dotless, base);
    if (url.username !== "" || url.password !== "") {
      throw new RuntimeError("TOOL_TARGET_NOT_ALLOWED", "tool.http_get: URLs carrying credentials are not allowed");
    }
    if (!allow.allows(url.hostname)) {
      throw new RuntimeError("TOOL_TARGET_NOT_ALLOWED", `tool.http_get: host ${url.hostname} is not on the allow-list`, { details: { host: url.hostname } });
    }
    return url;
  };

  /**
   * The first hop: the endpoint exactly as the policy judged it. A spelling WHATWG URL rewrites
   * (`http://LOCALHOST/`, `http://%6cocalhost/`, `http:\\localhost/`, a tab in the host …) would be
   * judged as one string and fetched as another, so it is refused with the canonical form named.
   */
  const firstHop = (endpoint: string): URL => {
    const url = checkTarget(endpoint);
    if (url.href !== endpoint) throw notCanonical(endpoint, url.href);
    return url;
  };

  /** The next hop, only when the policy allows it as it allowed the first (a new decision, recorded by the interceptor). */
  const nextHop = async (location: string, from: URL, context: ToolCallContext | undefined): Promise<URL> => {
    const next = checkTarget(location, from);
    // The Location is resolved first, so the policy is asked about `next.href`, a canonical form; the fetch uses
    // exactly that string's parse. Should a parse ever not be a fixed point, the hop is refused, not guessed.
    if (new URL(next.href).href !== next.href) throw new RuntimeError("TOOL_REDIRECT_DENIED", `tool.http_get: ${redactUrl(from)} redirected to a URL without a stable canonical form; not followed`);
    if (!context) throw new RuntimeError("TOOL_REDIRECT_DENIED", `tool.http_get: ${redactUrl(from)} redirected to ${redactUrl(next)}; not followed, as no policy decision can be asked for it here`);
    const d = await context.redecide({ endpoint: next.href });
    if (d.decision !== "allow") {
      throw new RuntimeError("TOOL_REDIRECT_DENIED", `tool.http_get: ${redactUrl(from)} redirected to ${redactUrl(next)}, which the policy denies: ${d.reason}`, {
        details: { location: redactUrl(next), policy_ref: d.policy_ref, policies: d.policies },
      });
    }
    return next;
  };

  return defineTool({
    name: "tool.http_get",
    description: "HTTP GET of an allow-listed http(s) URL; returns status and body text (bounded).",
    params: HttpGetParams,
    // Asked before the decision, so a respelled endpoint is a recorded deny and nothing the policy approves.
    unfaithful(params) {
      const endpoint = params["endpoint"];
      if (typeof endpoint !== "string") return undefined;
      const canonical = canonicalHref(endpoint);
      if (canonical === undefined) return undefined;
      const dotless = dotlessHref(new URL(canonical));
      if (dotless !== undefined) return { path: "params.endpoint", problem: trailingDotProblem(dotless) };
      return canonical === endpoint ? undefined : { path: "params.endpoint", problem: notCanonicalProblem(canonical) };
    },
    async run({ endpoint }, signal, context): Promise<HttpGetOutput> {
      let url = firstHop(endpoint);
      const deadline = AbortSignal.timeout(timeoutMs);
      const combined = signal ? AbortSignal.any([deadline, signal]) : deadline;
      try {
        for (let hop = 0; ; hop++) {
          const res = await get(url, lookup, combined, ca);
          const location = res.headers.location;
          const status = res.statusCode ?? 0;
          if (REDIRECTS.has(status) && location !== undefined) {
            res.destroy();
            if (hop >= maxRedirects) throw new RuntimeError("TOOL_FAILED", `tool.http_get: more than ${maxRedirects} redirects`);
            url = await nextHop(location, url, context);
            continue;
          }
          const { body, truncated } = await readBounded(res, maxBody);
          return { url: url.href, status, content_type: res.headers["content-type"] ?? null, body, truncated };
        }
      } catch (e) {
        if (e instanceof RuntimeError) throw e;
        if (e instanceof Error && e.cause instanceof RuntimeError) throw e.cause;
        if (deadline.aborted) throw new RuntimeError("TOOL_FAILED", `tool.http_get: ${redactUrl(url)} timed out after ${timeoutMs} ms`, { cause: e });
        if (signal?.aborted) throw new RuntimeError("TOOL_FAILED", "tool.http_get: cancelled", { cause: e });
        const cause = e instanceof Error && e.cause instanceof Error ? `: ${e.cause.message}` : "";
        throw new RuntimeError("TOOL_FAILED", `tool.http_get: ${redactUrl(url)}: ${messageOf(e)}${cause}`, { cause: e });
      }
    },
  });
}

/** `new URL(e).href`, or undefined when `e` is not a URL (refused later, as not a URL). */
function canonicalHref(endpoint: string): string | undefined {
  try {
    return new URL(endpoint).href;
  } catch {
    return undefined;
  }
}

/**
 * The URL with its host's trailing dot(s) removed, when it has any (`http://localhost.:P/`).
 * WHATWG keeps the dot, so the spelling is canonical, but the host it names is the dot-less one:
 * `like "*://localhost:*"` would not match what is fetched. Not representable: refused, never rewritten.
 */
function dotlessHref(url: URL): string | undefined {
  if (!url.hostname.endsWith(".")) return undefined;
  const u = new URL(url.href);
  u.hostname = url.hostname.replace(/\.+$/, "");
  return u.href;
}

function trailingDotProblem(dotless: string): string {
  return `a host name ending in "." (the same host as without it, which a policy matching the host would not see): send ${redactUrl(dotless)}`;
}

function trailingDot(href: string, dotless: string, redirectedFrom: URL | undefined): RuntimeError {
  const hop = redirectedFrom ? `a redirect from ${redactUrl(redirectedFrom)} to ${redactUrl(href)}` : "params.endpoint";
  return new RuntimeError("INPUT_NOT_REPRESENTABLE", `tool.http_get: ${hop} is not representable for the policy (params.endpoint): ${trailingDotProblem(dotless)}`, {
    details: { path: "params.endpoint", canonical: redactUrl(dotless) },
    hint: "drop the trailing dot of the host name, so the policy judges the host that is fetched",
  });
}

function notCanonicalProblem(canonical: string): string {
  return `not spelled the way it would be fetched: its canonical form is ${redactUrl(canonical)}${canonical.includes("?") ? " (query values redacted here)" : ""}; send that, so the policy judges the URL fetched`;
}

/** The refusal of an endpoint that is not spelled the way it will be fetched (400, params.endpoint named); the tool's own check, for callers without the interceptor. */
function notCanonical(_endpoint: string, canonical: string): RuntimeError {
  return new RuntimeError("INPUT_NOT_REPRESENTABLE", `tool.http_get: params.endpoint is ${notCanonicalProblem(canonical)}`, {
    details: { path: "params.endpoint", canonical: redactUrl(canonical) },
    hint: "send the endpoint exactly as `new URL(endpoint).href` spells it (lower-case scheme and host, no default port, percent-decoding applied, a path of at least /), so the policy judges the URL that is fetched",
  });
}

/** One GET over node:http(s), connecting through `lookup` (the address guard); resolves with the response head. */
function get(url: URL, lookup: LookupFunction, signal: AbortSignal, ca: string[] | undefined): Promise<IncomingMessage> {
  const https = url.protocol === "https:";
  const request = https ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const options = { method: "GET", lookup, signal, headers: { "user-agent": `autonomyops-runtime/${RUNTIME_VERSION}`, accept: "*/*" }, ...(https && ca ? { ca } : {}) };
    const req = request(url, options, resolve);
    req.on("error", reject);
    req.end();
  });
}

/** The body as UTF-8 text, at most `max` bytes of it; the rest is not read. */
async function readBounded(res: IncomingMessage, max: number): Promise<{ body: string; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  let truncated = false;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    if (size + chunk.byteLength > max) {
      chunks.push(chunk.subarray(0, max - size));
      size = max;
      truncated = true;
      res.destroy();
      break;
    }
    chunks.push(chunk);
    size += chunk.byteLength;
  }
  return { body: new TextDecoder("utf-8").decode(Buffer.concat(chunks, size)), truncated };
}
