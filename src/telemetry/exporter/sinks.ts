/**
 * Where the exporter delivers: an OTLP/HTTP logs endpoint, the control plane's
 * event ingestion, or both. A sink resolves when the receiver has the whole
 * batch; anything it throws means "not delivered" and the exporter sends the
 * batch again later (at-least-once; receivers dedupe on the event id: node,
 * WAL generation, seq — eventIdOf).
 *
 * HTTP status classes (the same for both sinks):
 *   2xx                        delivered
 *   408, 429, 5xx, network,    SinkUnavailable: retried with backoff, forever
 *   timeout
 *   400, 413, 422              SinkRejected: the receiver refuses this content; the
 *                              exporter splits the batch to find the poison
 *                              record(s) and dead-letters only those
 *   other 4xx (401, 403, 404,  SinkUnavailable with reason "refused": a
 *   405, 415, …)               configuration problem, not a property of the
 *                              records, so nothing is dead-lettered; retried
 *                              with backoff until an operator fixes it
 */
import { UsageError, redactUrl, redactUrlsIn, systemClock } from "../../lib/index.js";
import type { Clock } from "../../lib/index.js";
import { CpClient, CpClientError, MAX_EVENTS_PER_BATCH, NodeId, ROUTES, routeUrl } from "../../cpapi/index.js";
import type { IngestEvent, IngestResult } from "../../cpapi/index.js";
import type { ExportRecord } from "./record.js";
import { toIngestEvent } from "./cp-event.js";
import { encodeLogsRequest } from "./otlp.js";
import { gzip } from "node:zlib";
import { promisify } from "node:util";

const gzipAsync = promisify(gzip);

/** Request body compression (OTLP/HTTP: `Content-Encoding: gzip`). */
export type Compression = "gzip" | "none";

export interface SinkResult {
  /** OTLP partial success: the receiver accepted the request but dropped this many records (the spec forbids retrying them). */
  partialRejected?: { count: number; message: string };
}

export interface SendOptions {
  /** Aborts the request (the batch then counts as not delivered). */
  signal?: AbortSignal;
}

export interface Sink {
  /** For status output and dead-letter records. */
  readonly name: string;
  /** Resolves once the receiver has every record of the batch; throws when it may not have. */
  send(batch: readonly ExportRecord[], opts?: SendOptions): Promise<void | SinkResult>;
}

export type UnavailableReason = "network" | "timeout" | "status" | "refused" | "protocol" | "aborted";

/** Not delivered, for now: retry later. */
export class SinkUnavailable extends Error {
  readonly reason: UnavailableReason;
  readonly status: number | undefined;
  /** The receiver's Retry-After, if it sent one. */
  readonly retryAfterMs: number | undefined;
  constructor(message: string, reason: UnavailableReason, opts: { status?: number; retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "SinkUnavailable";
    this.reason = reason;
    this.status = opts.status;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

/** The receiver permanently refuses this batch's content (400/413/422): resending the same batch cannot succeed. */
export class SinkRejected extends Error {
  readonly status: number;
  readonly sink: string;
  constructor(message: string, status: number, sink: string) {
    super(message);
    this.name = "SinkRejected";
    this.status = status;
    this.sink = sink;
  }
}

const REJECTING = new Set([400, 413, 422]);

/** What an HTTP status means for delivery (see the module comment). */
export function classifyStatus(status: number): "delivered" | "unavailable" | "rejected" | "refused" {
  if (status >= 200 && status < 300) return "delivered";
  if (status === 408 || status === 429 || status >= 500) return "unavailable";
  if (REJECTING.has(status)) return "rejected";
  return "refused";
}

function retryAfterMs(h: string | null, nowMs: number): number | undefined {
  if (h === null) return undefined;
  if (/^\d+$/.test(h.trim())) return Number(h.trim()) * 1000;
  const t = Date.parse(h);
  return Number.isFinite(t) ? Math.max(0, t - nowMs) : undefined;
}

const MAX_REASON = 512;

interface HttpPost {
  url: string;
  body: string;
  compression?: Compression | undefined;
  headers: Readonly<Record<string, string>>;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  sink: string;
  clock: Clock;
}

/** POSTs JSON; resolves with the parsed 2xx body (or undefined), throws SinkUnavailable / SinkRejected otherwise. */
async function postJson(p: HttpPost): Promise<unknown> {
  const timeout = AbortSignal.timeout(p.timeoutMs);
  const signal = p.signal ? AbortSignal.any([timeout, p.signal]) : timeout;
  let res: Response;
  let text: string;
  // Messages reach GET /v1/status (unauthenticated) and stderr: never the URL's credentials.
  const shown = redactUrl(p.url);
  try {
    const gzipped = p.compression === "gzip";
    const body = gzipped ? await gzipAsync(p.body) : p.body;
    res = await fetch(p.url, { method: "POST", headers: { ...p.headers, "content-type": "application/json", ...(gzipped ? { "content-encoding": "gzip" } : {}) }, body, signal });
    text = await res.text();
  } catch (e) {
    if (p.signal?.aborted) throw new SinkUnavailable(`${p.sink}: aborted`, "aborted", { cause: e });
    if (timeout.aborted) throw new SinkUnavailable(`${p.sink}: no answer from ${shown} within ${p.timeoutMs} ms`, "timeout", { cause: e });
    const cause = (e as { cause?: { code?: unknown } }).cause;
    // Node's fetch names the whole URL (credentials included) in some of its messages.
    const code = typeof cause?.code === "string" ? cause.code : redactUrlsIn(e instanceof Error ? e.message : String(e));
    throw new SinkUnavailable(`${p.sink}: cannot reach ${shown}: ${code}`, "network", { cause: e });
  }
  const reason = text.replace(/\s+/g, " ").trim().slice(0, MAX_REASON);
  const verdict = classifyStatus(res.status);
  if (verdict === "rejected") throw new SinkRejected(`${p.sink}: ${shown} refused the batch with HTTP ${res.status}${reason ? `: ${reason}` : ""}`, res.status, p.sink);
  if (verdict !== "delivered") {
    const ra = retryAfterMs(res.headers.get("retry-after"), p.clock.now());
    throw new SinkUnavailable(`${p.sink}: ${shown} answered HTTP ${res.status}${verdict === "refused" ? " (a configuration problem: check the URL and credentials)" : ""}${reason ? `: ${reason}` : ""}`,
      verdict === "refused" ? "refused" : "status", { status: res.status, ...(ra === undefined ? {} : { retryAfterMs: ra }) });
  }
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

/**
 * `base` with `suffix` appended to its path: a base URL may carry a query (some
 * collectors authenticate with `?api_key=…`), which must stay the query, not swallow
 * the path. `keep`: a path already ending in the suffix is used as is.
 */
function endpointOf(base: string, suffix: string, keep: boolean): string {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    const b = trimSlash(base); // not a URL: fetch will say so, with the text we were given
    return keep && b.endsWith(suffix) ? b : `${b}${suffix}`;
  }
  const path = trimSlash(url.pathname);
  url.pathname = keep && path.endsWith(suffix) ? path : `${path}${suffix}`;
  return url.href;
}

export interface OtlpHttpLogsSinkOptions {
  /** Collector base URL; records go to `<url>/v1/logs` (a URL already ending in /v1/logs is used as is). */
  url: string;
  /** Extra request headers (e.g. authorization). */
  headers?: Readonly<Record<string, string>>;
  /** Per-request timeout; a slower answer counts as not delivered. Default 10 s. */
  timeoutMs?: number;
  /** "gzip" compresses each request (the JSON is ~5× the WAL payload; gzip takes most of that back). Default "none", as OTLP's. */
  compression?: Compression;
  /** Resource `service.name`: the node id. */
  serviceName: string;
  /** Clock for observedTimeUnixNano and Retry-After dates. Default {@link systemClock}. */
  clock?: Clock;
}

/** OTLP/HTTP JSON logs (`POST <url>/v1/logs`, `application/json`, ExportLogsServiceRequest). */
export class OtlpHttpLogsSink implements Sink {
  readonly name = "otlp";
  readonly endpoint: string;
  readonly #o: OtlpHttpLogsSinkOptions;

  constructor(o: OtlpHttpLogsSinkOptions) {
    this.#o = o;
    this.endpoint = endpointOf(o.url, "/v1/logs", true);
  }

  async send(batch: readonly ExportRecord[], opts: SendOptions = {}): Promise<void | SinkResult> {
    if (batch.length === 0) return;
    const clock = this.#o.clock ?? systemClock;
    const observed = BigInt(Math.round(clock.now())) * 1_000_000n;
    const body = JSON.stringify(encodeLogsRequest(batch, this.#o.serviceName, observed));
    const res = await postJson({ url: this.endpoint, body, compression: this.#o.compression, headers: this.#o.headers ?? {}, timeoutMs: this.#o.timeoutMs ?? 10_000, signal: opts.signal, sink: this.name, clock });
    const partial = (res as { partialSuccess?: { rejectedLogRecords?: unknown; errorMessage?: unknown } } | undefined)?.partialSuccess;
    const count = Number(partial?.rejectedLogRecords ?? 0);
    if (Number.isFinite(count) && count > 0) return { partialRejected: { count, message: typeof partial?.errorMessage === "string" ? partial.errorMessage : "" } };
  }
}

export interface ControlPlaneEventsSinkOptions {
  /** Control-plane base URL (`--server`); events go to `<url>/v1/events`. */
  url: string;
  /** The node credential (bearer), from the state root's control-plane.json; events:write. */
  token?: string | undefined;
  /** Default 10 s. */
  timeoutMs?: number;
  /** Clock for events without a timestamp and Retry-After dates. Default {@link systemClock}. */
  clock?: Clock;
  /** Most bytes of events per request (the server's body limit is 4 MiB). Default 2 MiB. */
  maxRequestBytes?: number;
  /** PEM of the private CA that issued the control plane's certificate (`--server-ca`); https only. */
  ca?: string | undefined;
}

/** Bytes of request a batch is cut into: well under the control plane's 4 MiB body limit. */
const CP_REQUEST_BYTES = 2 * 1024 * 1024;

/**
 * The control plane's event ingestion, through the typed cpapi client:
 * `POST <url>/v1/events` with a cpapi IngestRequest, the node credential as
 * bearer. A batch is cut into requests of at most MAX_EVENTS_PER_BATCH events
 * and `maxRequestBytes`; it is delivered when every request was acknowledged
 * with `received` = events sent = `inserted + deduped`. Event ids are
 * idempotent, so a batch partly acknowledged before a failure is simply sent
 * again whole.
 */
export class ControlPlaneEventsSink implements Sink {
  readonly name = "control-plane";
  readonly endpoint: string;
  readonly #client: CpClient;
  readonly #clock: Clock;
  readonly #maxBytes: number;

  constructor(o: ControlPlaneEventsSinkOptions) {
    this.#clock = o.clock ?? systemClock;
    this.#client = new CpClient({ baseUrl: o.url, token: o.token, timeoutMs: o.timeoutMs ?? 10_000, clock: this.#clock, ...(o.ca !== undefined ? { ca: o.ca } : {}) });
    this.endpoint = routeUrl(this.#client.baseUrl, ROUTES.ingestEvents).href;
    this.#maxBytes = o.maxRequestBytes ?? CP_REQUEST_BYTES;
  }

  async send(batch: readonly ExportRecord[], opts: SendOptions = {}): Promise<void> {
    if (batch.length === 0) return;
    // A node id the contract refuses is the exporter's configuration, not the events': never dead-letter for it.
    const badNode = batch.find((r) => !NodeId.safeParse(r.nodeId).success);
    if (badNode) throw new SinkUnavailable(`${this.name}: node id ${JSON.stringify(badNode.nodeId.slice(0, 80))} is not a control-plane node id (1–63 of a-z 0-9 . _ -): set the enrolled node's id (--node-id, --state-root, [telemetry] node_id)`, "refused");
    const now = this.#clock.now();
    for (const events of chunks(batch.map((r) => toIngestEvent(r, now)), this.#maxBytes)) {
      let res: IngestResult;
      try {
        res = await this.#client.ingestEvents({ events }, opts.signal ? { signal: opts.signal } : {});
      } catch (e) {
        throw cpSinkError(e, this.name, opts.signal);
      }
      if (res.received !== events.length || res.inserted + res.deduped !== res.received) {
        throw new SinkUnavailable(`${this.name}: ${redactUrl(this.endpoint)} acknowledged received ${res.received}, inserted ${res.inserted}, deduped ${res.deduped} of ${events.length} events`, "protocol");
      }
    }
  }
}

/** Requests of at most MAX_EVENTS_PER_BATCH events and `maxBytes` of JSON (a single larger event still goes, alone). */
function chunks(events: readonly IngestEvent[], maxBytes: number): IngestEvent[][] {
  const out: IngestEvent[][] = [];
  let cur: IngestEvent[] = [];
  let bytes = 0;
  for (const e of events) {
    const b = Buffer.byteLength(JSON.stringify(e), "utf8") + 1;
    if (cur.length > 0 && (cur.length >= MAX_EVENTS_PER_BATCH || bytes + b > maxBytes)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(e);
    bytes += b;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/**
 * A cpapi client failure as the exporter's delivery verdict (same classes as
 * the module comment): 400/413/422 refuse the content (bisected, then
 * dead-lettered); 408/429/5xx (503 STORE_BUSY, 507 STORE_FULL) and transport
 * failures are retried with backoff honouring Retry-After; 401/403/404 are a
 * configuration problem (credential, URL), retried and never dead-lettered;
 * an event the client's own contract check refuses (never sent) counts as
 * refused content (status 0).
 */
function cpSinkError(e: unknown, sink: string, signal: AbortSignal | undefined): Error {
  if (signal?.aborted) return new SinkUnavailable(`${sink}: aborted`, "aborted", { cause: e });
  if (e instanceof UsageError) return new SinkRejected(`${sink}: not sent, off the cpapi contract: ${e.message}`, 0, sink);
  if (!(e instanceof CpClientError)) return e instanceof Error ? e : new Error(String(e));
  const status = e.status ?? undefined;
  if (e.code === "CP_REQUEST_FAILED") return new SinkUnavailable(`${sink}: ${e.message}`, e.detail.startsWith("no answer within") ? "timeout" : "network", { cause: e });
  if (e.code === "CP_RESPONSE_INVALID" || status === undefined) return new SinkUnavailable(`${sink}: ${e.message}`, "protocol", { cause: e, ...(status === undefined ? {} : { status }) });
  const verdict = classifyStatus(status);
  if (verdict === "rejected") return new SinkRejected(`${sink}: ${e.message}`, status, sink);
  const retry = e.retryAfterMs ?? undefined;
  return new SinkUnavailable(`${sink}: ${e.message}${verdict === "refused" ? " (a configuration problem: check the URL and the node credential)" : ""}`,
    verdict === "refused" ? "refused" : "status", { status, cause: e, ...(retry === undefined ? {} : { retryAfterMs: retry }) });
}

/**
 * Delivers every batch to all sinks; delivered only when each has it. A sink
 * that already took a batch is not sent that same batch again while another
 * sink is retried (remembered for the last few batches), so one sink's outage
 * does not flood the other with duplicates.
 */
export class FanoutSink implements Sink {
  readonly name: string;
  readonly sinks: readonly Sink[];
  readonly #done = new Map<string, Set<number>>();
  static readonly REMEMBERED = 64;

  constructor(sinks: readonly Sink[]) {
    if (sinks.length === 0) throw new RangeError("FanoutSink needs at least one sink");
    this.sinks = sinks;
    this.name = sinks.map((s) => s.name).join("+");
  }

  async send(batch: readonly ExportRecord[], opts: SendOptions = {}): Promise<void | SinkResult> {
    const key = batch.map((r) => r.seq).join(",");
    const done = this.#done.get(key) ?? new Set<number>();
    const results = await Promise.allSettled(this.sinks.map((s, i) => (done.has(i) ? Promise.resolve(undefined) : s.send(batch, opts))));
    const failures: unknown[] = [];
    let partial: SinkResult["partialRejected"];
    results.forEach((r, i) => {
      if (r.status === "fulfilled") {
        done.add(i);
        if (r.value?.partialRejected) partial = partial ? { count: partial.count + r.value.partialRejected.count, message: `${partial.message}; ${r.value.partialRejected.message}` } : r.value.partialRejected;
      } else failures.push(r.reason);
    });
    if (failures.length === 0) {
      this.#done.delete(key);
      return partial ? { partialRejected: partial } : undefined;
    }
    this.#done.delete(key);
    this.#done.set(key, done);
    while (this.#done.size > FanoutSink.REMEMBERED) this.#done.delete(this.#done.keys().next().value as string);
    // Retry first: a rejection is only acted on once every other sink has the batch.
    throw failures.find((f) => !(f instanceof SinkRejected)) ?? failures[0];
  }
}
