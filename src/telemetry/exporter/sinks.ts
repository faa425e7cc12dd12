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
import { redactUrl, redactUrlsIn, systemClock } from "../../lib/index.js";
import type { Clock } from "../../lib/index.js";
import type { ExportRecord } from "./record.js";
import { eventIdOf, eventTimeNanos, nanosToRfc3339 } from "./record.js";
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
  /** Control-plane base URL; events go to `<url>/v1/events`. */
  url: string;
  headers?: Readonly<Record<string, string>>;
  /** Default 10 s. */
  timeoutMs?: number;
  /** Clock for events without a timestamp and Retry-After dates. Default {@link systemClock}. */
  clock?: Clock;
}

/** One event in the control plane's ingestion format (original-interfaces §2.3). */
export interface ControlPlaneEvent {
  event_id: string;
  event_type: string;
  node_id: string;
  timestamp: string;
  seq: number;
  priority: number;
  lock_fingerprint?: string;
  release_id?: string;
  payload: Record<string, unknown>;
}

export function toControlPlaneEvent(r: ExportRecord, nowMs: number): ControlPlaneEvent {
  const ev: ControlPlaneEvent = {
    event_id: eventIdOf(r),
    event_type: r.eventName,
    node_id: r.nodeId,
    timestamp: nanosToRfc3339(eventTimeNanos(r.event) ?? BigInt(Math.round(nowMs)) * 1_000_000n),
    seq: r.seq,
    priority: r.priority,
    payload: r.event,
  };
  if (typeof r.event.lock_fingerprint === "string") ev.lock_fingerprint = r.event.lock_fingerprint;
  if (typeof r.event.release_id === "string") ev.release_id = r.event.release_id;
  return ev;
}

/**
 * The control plane's event ingestion: `POST <url>/v1/events` with
 * `{"events":[…]}`, answered `{received, inserted, deduped}`; duplicates (same
 * event_id) are ignored by the receiver. An answer whose `received` is not the
 * number sent counts as not delivered.
 */
export class ControlPlaneEventsSink implements Sink {
  readonly name = "control-plane";
  readonly endpoint: string;
  readonly #o: ControlPlaneEventsSinkOptions;

  constructor(o: ControlPlaneEventsSinkOptions) {
    this.#o = o;
    this.endpoint = endpointOf(o.url, "/v1/events", false);
  }

  async send(batch: readonly ExportRecord[], opts: SendOptions = {}): Promise<void> {
    if (batch.length === 0) return;
    const clock = this.#o.clock ?? systemClock;
    const now = clock.now();
    const body = JSON.stringify({ events: batch.map((r) => toControlPlaneEvent(r, now)) });
    const res = await postJson({ url: this.endpoint, body, headers: this.#o.headers ?? {}, timeoutMs: this.#o.timeoutMs ?? 10_000, signal: opts.signal, sink: this.name, clock });
    const received = (res as { received?: unknown } | undefined)?.received;
    if (typeof received !== "number" || received !== batch.length) {
      throw new SinkUnavailable(`${this.name}: ${redactUrl(this.endpoint)} acknowledged ${String(received)} of ${batch.length} events`, "protocol");
    }
  }
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
