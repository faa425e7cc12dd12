/**
 * The HTTP layer of the registry client: one place that builds URLs, attaches
 * auth (retrying once after a 401 challenge), follows redirects without leaking
 * credentials to other origins, enforces an idle timeout, caps response sizes
 * and turns failures into OciErrors.
 */
import { OciError } from "./errors.js";
import type { RequestContext } from "./registry-errors.js";
import { authFailed, describeAttempt, networkError, RequestTimeout, statusError } from "./registry-errors.js";

/** What the transport needs from the auth layer (RegistryAuth implements it). */
export interface AuthProvider {
  cachedHeader(scope: string): string | undefined;
  respond(wwwAuthenticate: string | null, scope: string): Promise<string>;
}

export interface TransportOptions {
  /** host[:port]. */
  registry: string;
  repository: string;
  plainHttp: boolean;
  fetch: typeof fetch;
  /** Idle timeout: the longest a request may go without progress. */
  timeoutMs: number;
  userAgent: string;
  auth: AuthProvider;
}

export type Method = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface RegistryRequest {
  method: Method;
  /** A path under the registry (`/v2/...`) or an absolute URL from a Location or Link header. */
  url: string | URL;
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** True when the request needs push rights (token scope `pull,push`). */
  push?: boolean;
  /** What the request is about, for messages: e.g. `manifest "latest"`. */
  thing: string;
}

const MAX_REDIRECTS = 5;
const MAX_ERROR_BODY = 16 * 1024;
/** Slowest upload rate we wait for before calling a request with a body stuck (bytes/s). */
const MIN_UPLOAD_RATE = 64 * 1024;

/** Reads a fetch Response body, refusing more than `limit` bytes; `onChunk` sees each piece. */
export async function readCapped(
  res: Response,
  limit: number,
  opts: { tooLarge?: (seen: number) => OciError; onChunk?: (chunk: Uint8Array, total: number) => void; onRead?: () => void } = {},
): Promise<Uint8Array> {
  const tooLarge = opts.tooLarge ?? ((n: number) => new OciError("OCI_REGISTRY_ERROR", `response of ${n} bytes exceeds the ${limit}-byte limit`, "check the server address"));
  const declared = Number(res.headers.get("content-length") ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limit) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge(declared);
  }
  if (res.body === null) return new Uint8Array(0);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    opts.onRead?.();
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge(total);
    }
    chunks.push(value);
    opts.onChunk?.(value, total);
  }
  return concat(chunks, total);
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Aborts a request that makes no progress for `ms`; reset on every chunk read. */
class IdleTimer {
  readonly #ctl = new AbortController();
  #timer: NodeJS.Timeout | undefined;

  constructor(readonly ms: number) {
    this.reset(ms);
  }

  get signal(): AbortSignal {
    return this.#ctl.signal;
  }

  reset(ms = this.ms): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#ctl.abort(new RequestTimeout(ms)), ms);
    this.#timer.unref();
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}

/** A registry answer whose body has not been read yet; read it or discard it. */
export class RegistryResponse {
  readonly #res: Response;
  readonly #timer: IdleTimer;
  readonly #ctx: RequestContext;

  constructor(res: Response, readonly url: URL, timer: IdleTimer, ctx: RequestContext) {
    this.#res = res;
    this.#timer = timer;
    this.#ctx = ctx;
  }

  get status(): number {
    return this.#res.status;
  }

  header(name: string): string | null {
    return this.#res.headers.get(name);
  }

  /** The body, at most `limit` bytes; network failures while reading become OCI_REGISTRY_UNREACHABLE. */
  async bytes(limit: number, opts: { tooLarge?: (seen: number) => OciError; onChunk?: (chunk: Uint8Array, total: number) => void } = {}): Promise<Uint8Array> {
    try {
      return await readCapped(this.#res, limit, { ...opts, onRead: () => this.#timer.reset() });
    } catch (e) {
      throw networkError(e, this.#ctx);
    } finally {
      this.#timer.clear();
    }
  }

  /** The body as chunks, at most `limit` bytes (more: `tooLarge`); the idle timer restarts on every chunk. */
  async *chunks(limit: number, tooLarge: (seen: number) => OciError): AsyncGenerator<Uint8Array> {
    const declared = Number(this.#res.headers.get("content-length") ?? Number.NaN);
    try {
      if (Number.isFinite(declared) && declared > limit) throw tooLarge(declared);
      if (this.#res.body === null) return;
      let total = 0;
      for await (const chunk of this.#res.body as AsyncIterable<Uint8Array>) {
        this.#timer.reset();
        total += chunk.byteLength;
        if (total > limit) throw tooLarge(total);
        yield chunk;
      }
    } catch (e) {
      await this.#res.body?.cancel().catch(() => undefined);
      throw e instanceof OciError ? e : networkError(e, this.#ctx);
    } finally {
      this.#timer.clear();
    }
  }

  /** Releases the connection without reading the body. */
  async discard(): Promise<void> {
    this.#timer.clear();
    await this.#res.body?.cancel().catch(() => undefined);
  }
}

/** Sends requests for one repository on one registry. */
export class RegistryTransport {
  readonly base: URL;
  /** `host/repository`, for messages. */
  readonly location: string;
  /** `/v2/<repository>`. */
  readonly repoPath: string;
  readonly #opts: Readonly<TransportOptions>;

  constructor(opts: TransportOptions) {
    this.#opts = Object.freeze({ ...opts });
    this.base = new URL(`${opts.plainHttp ? "http" : "https"}://${opts.registry}`);
    this.location = `${opts.registry}/${opts.repository}`;
    this.repoPath = `/v2/${opts.repository}`;
  }

  /** Sends `req`, answering one auth challenge; any status but 401 is returned to the caller. */
  async send(req: RegistryRequest): Promise<RegistryResponse> {
    const url = new URL(req.url, this.base);
    const scope = `repository:${this.#opts.repository}:${req.push === true ? "pull,push" : "pull"}`;
    const first = await this.#exchange(req, url, this.#opts.auth.cachedHeader(scope));
    if (first.status !== 401) return first;
    const challenge = first.header("www-authenticate");
    await first.discard();
    const again = await this.#exchange(req, url, await this.#opts.auth.respond(challenge, scope));
    if (again.status !== 401) return again;
    await again.discard();
    throw authFailed(`registry ${this.#opts.registry} refused the credentials for ${scope} (${describeAttempt(req.method, url)})`, { scope });
  }

  /** Sends `req` and throws the matching OciError unless the status is one of `ok`. */
  async expect(req: RegistryRequest, ok: readonly number[]): Promise<RegistryResponse> {
    const res = await this.send(req);
    if (ok.includes(res.status)) return res;
    throw await this.failure(res, req);
  }

  /** The OciError for an unexpected answer, with the registry's own error code when it sent one. */
  async failure(res: RegistryResponse, req: RegistryRequest): Promise<OciError> {
    const body = req.method === "HEAD" ? new Uint8Array(0) : await res.bytes(MAX_ERROR_BODY).catch(() => new Uint8Array(0));
    await res.discard();
    return statusError(res.status, body, { location: this.location, thing: req.thing, attempt: describeAttempt(req.method, res.url) });
  }

  async #exchange(req: RegistryRequest, start: URL, auth: string | undefined): Promise<RegistryResponse> {
    let url = start;
    let method: Method = req.method;
    let body = req.body;
    for (let hop = 0; ; hop++) {
      const ctx: RequestContext = { host: url.host, attempt: describeAttempt(method, url), https: url.protocol === "https:" };
      const timer = new IdleTimer(this.#opts.timeoutMs);
      // Headers only come back once the body is sent, so give big bodies time to travel.
      if (body !== undefined) timer.reset(this.#opts.timeoutMs + Math.ceil((body.length / MIN_UPLOAD_RATE) * 1000));
      let res: Response;
      try {
        res = await this.#opts.fetch(url, { method, headers: this.#headers(req, url, auth), body, redirect: "manual", signal: timer.signal });
      } catch (e) {
        timer.clear();
        throw networkError(e, ctx);
      }
      timer.reset();
      const location = res.headers.get("location");
      if (!isRedirect(res.status) || location === null) return new RegistryResponse(res, url, timer, ctx);
      timer.clear();
      await res.body?.cancel().catch(() => undefined);
      url = this.#redirectTarget(location, url, hop, req.thing);
      if (res.status === 303) {
        method = "GET";
        body = undefined;
      }
    }
  }

  #headers(req: RegistryRequest, url: URL, auth: string | undefined): Record<string, string> {
    const headers: Record<string, string> = { "user-agent": this.#opts.userAgent, ...req.headers };
    // Credentials go to the registry itself only, never to a blob store it redirects to.
    if (auth !== undefined && url.origin === this.base.origin) headers.authorization = auth;
    return headers;
  }

  #redirectTarget(location: string, from: URL, hop: number, thing: string): URL {
    const next = new URL(location, from);
    if (hop + 1 > MAX_REDIRECTS) {
      throw new OciError("OCI_REGISTRY_ERROR", `registry ${this.location} redirected more than ${MAX_REDIRECTS} times for ${thing}`, "check the registry's configuration", { details: { location: this.location } });
    }
    if (next.protocol !== "https:" && next.protocol !== "http:") {
      throw new OciError("OCI_REGISTRY_ERROR", `registry ${this.location} redirected ${thing} to an unsupported scheme ${next.protocol}`, "check the registry's configuration");
    }
    if (from.protocol === "https:" && next.protocol === "http:" && !this.#opts.plainHttp) {
      throw new OciError("OCI_REGISTRY_ERROR", `registry ${this.location} redirected ${thing} from HTTPS to plain HTTP (${next.host})`, "refusing the downgrade; check the registry's storage redirect settings");
    }
    return next;
  }
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}
