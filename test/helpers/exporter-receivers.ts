/**
 * Receivers for the exporter tests, on loopback. Both are OURS: no
 * OpenTelemetry Collector and no control plane can run here yet.
 *
 *  - OtlpJsonLogsReceiver implements the OTLP/HTTP JSON logs contract
 *    (POST /v1/logs, Content-Type application/json, ExportLogsServiceRequest,
 *    answered with an ExportLogsServiceResponse) and validates every request
 *    strictly against it: field names, 64-bit integers as decimal strings,
 *    enums as numbers, AnyValue with exactly one kind, hex trace/span ids.
 *    Anything off the contract is answered 400 and recorded in `violations`.
 *  - ControlPlaneEventsContractServer implements the control-plane ingestion
 *    contract's body (src/cpapi IngestRequest, strict; no authentication —
 *    the real control plane is tested in test/telemetry/exporter-control-plane.test.ts): POST /v1/events
 *    {"events":[…]} with required event_id, event_type, node_id, timestamp;
 *    answers {received, inserted, deduped}; duplicate event_id ignored;
 *    insertion order; 400 malformed, 405 wrong method; GET /v1/events
 *    (node_id, event_type, limit 100 max 1000, newest first); GET /v1/health.
 *
 * Both record deliveries in arrival order and take injected faults (status
 * codes, delays beyond the client's timeout, hanging requests, poison records).
 */
import { createServer } from "node:http";
import { gunzipSync } from "node:zlib";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { fromAnyValue } from "../../src/telemetry/exporter/otlp.js";
import { priorityOf } from "../../src/telemetry/exporter/priority.js";
import { IngestRequest } from "../../src/cpapi/index.js";

export interface Fault {
  /** Answer with this status (and `body`) instead of processing. */
  status?: number;
  body?: string;
  retryAfter?: string;
  /** Wait this long before processing and answering (a client that timed out meanwhile never learns the outcome). */
  delayMs?: number;
  /** Never answer (until close). */
  hang?: boolean;
  /** OTLP only: accept, but report this many records rejected in a partial success. */
  partialRejected?: number;
}

export interface Delivered {
  seq: number;
  nodeId: string;
  eventName: string;
  /** The autonomy.priority attribute (control plane: the event's priority field). */
  priority: number;
  event: Record<string, unknown>;
}

export interface ReceiverBase {
  url: string;
  /** Every accepted record, in arrival order (duplicates included). */
  arrivals: Delivered[];
  requests: number;
  accepted: number;
  violations: string[];
  /** Decide a fault per request (n = request number from 1); undefined = behave. */
  fault: ((n: number, records: readonly Delivered[]) => Fault | undefined) | undefined;
  /** Called before an accepted answer is sent (e.g. to check telemetry.pos at that instant). */
  beforeAccept: ((records: readonly Delivered[]) => Promise<void> | void) | undefined;
  close(): Promise<void>;
}

/** Wire bytes of every request body (compressed or not), for the compression tests. */
export const wireBytes: number[] = [];

/** The request body as text; a `Content-Encoding: gzip` body is inflated (any other encoding is refused by the caller's parse). */
function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      wireBytes.push(raw.length);
      try {
        resolve((req.headers["content-encoding"] === "gzip" ? gunzipSync(raw) : raw).toString("utf8"));
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
    req.on("error", reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed) return;
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(text);
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function closer(server: Server, hanging: Set<ServerResponse>): () => Promise<void> {
  return async () => {
    for (const r of hanging) r.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
}

const KNOWN_LOG_RECORD_FIELDS = new Set(["timeUnixNano", "observedTimeUnixNano", "severityNumber", "severityText", "body", "attributes", "droppedAttributesCount", "flags", "traceId", "spanId", "eventName"]);
const ANY_KINDS = new Set(["stringValue", "boolValue", "intValue", "doubleValue", "arrayValue", "kvlistValue", "bytesValue"]);
const U64 = /^\d{1,20}$/;

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkAnyValue(v: unknown, where: string, problems: string[]): void {
  if (!isObj(v)) return void problems.push(`${where}: AnyValue must be an object`);
  const keys = Object.keys(v);
  if (keys.length === 0) return;
  if (keys.length !== 1 || !ANY_KINDS.has(keys[0] ?? "")) return void problems.push(`${where}: AnyValue must hold exactly one of ${[...ANY_KINDS].join("|")}, got ${keys.join(",")}`);
  if ("intValue" in v && !(typeof v.intValue === "string" && /^-?\d+$/.test(v.intValue))) problems.push(`${where}: intValue must be a decimal string (int64 in proto3 JSON)`);
  if ("doubleValue" in v && typeof v.doubleValue !== "number") problems.push(`${where}: doubleValue must be a number`);
  if ("arrayValue" in v) {
    const vals = isObj(v.arrayValue) ? v.arrayValue.values : undefined;
    if (vals !== undefined && !Array.isArray(vals)) problems.push(`${where}: arrayValue.values must be an array`);
    (Array.isArray(vals) ? vals : []).forEach((x, i) => checkAnyValue(x, `${where}[${i}]`, problems));
  }
  if ("kvlistValue" in v) checkKeyValues(isObj(v.kvlistValue) ? v.kvlistValue.values : undefined, `${where}.kvlist`, problems, true);
}

function checkKeyValues(kvs: unknown, where: string, problems: string[], optional = false): void {
  if (kvs === undefined && optional) return;
  if (!Array.isArray(kvs)) return void problems.push(`${where}: must be a KeyValue array`);
  kvs.forEach((kv, i) => {
    if (!isObj(kv) || typeof kv.key !== "string") return void problems.push(`${where}[${i}]: KeyValue needs a string key`);
    checkAnyValue(kv.value, `${where}.${kv.key}`, problems);
  });
}

function attr(kvs: unknown, key: string): unknown {
  if (!Array.isArray(kvs)) return undefined;
  const kv = (kvs as { key?: unknown; value?: unknown }[]).find((x) => x.key === key);
  return kv ? fromAnyValue(kv.value) : undefined;
}

/** Validates an ExportLogsServiceRequest; returns the records it carries, or the contract problems. */
export function parseLogsRequest(doc: unknown): { records: Delivered[]; problems: string[] } {
  const problems: string[] = [];
  const records: Delivered[] = [];
  if (!isObj(doc) || !Array.isArray(doc.resourceLogs)) return { records, problems: ["body must be an ExportLogsServiceRequest with a resourceLogs array"] };
  doc.resourceLogs.forEach((rl: unknown, i) => {
    if (!isObj(rl)) return void problems.push(`resourceLogs[${i}] must be an object`);
    const resAttrs = isObj(rl.resource) ? rl.resource.attributes : undefined;
    checkKeyValues(resAttrs, `resourceLogs[${i}].resource.attributes`, problems, true);
    const service = attr(resAttrs, "service.name");
    if (!Array.isArray(rl.scopeLogs)) return void problems.push(`resourceLogs[${i}].scopeLogs must be an array`);
    rl.scopeLogs.forEach((sl: unknown, j) => {
      if (!isObj(sl) || !Array.isArray(sl.logRecords)) return void problems.push(`scopeLogs[${j}].logRecords must be an array`);
      if (sl.scope !== undefined && !(isObj(sl.scope) && typeof sl.scope.name === "string")) problems.push(`scopeLogs[${j}].scope must have a string name`);
      sl.logRecords.forEach((lr: unknown, k) => {
        const at = `logRecords[${k}]`;
        if (!isObj(lr)) return void problems.push(`${at} must be an object`);
        for (const key of Object.keys(lr)) if (!KNOWN_LOG_RECORD_FIELDS.has(key)) problems.push(`${at}: unknown field ${key}`);
        for (const key of ["timeUnixNano", "observedTimeUnixNano"]) if (lr[key] !== undefined && !(typeof lr[key] === "string" && U64.test(lr[key]))) problems.push(`${at}.${key} must be a decimal string (fixed64)`);
        if (lr.severityNumber !== undefined && !(Number.isInteger(lr.severityNumber) && (lr.severityNumber as number) >= 0 && (lr.severityNumber as number) <= 24)) problems.push(`${at}.severityNumber must be an integer 0–24`);
        if (lr.severityText !== undefined && typeof lr.severityText !== "string") problems.push(`${at}.severityText must be a string`);
        if (lr.traceId !== undefined && !(typeof lr.traceId === "string" && /^[0-9a-f]{32}$/.test(lr.traceId))) problems.push(`${at}.traceId must be 32 lowercase hex digits`);
        if (lr.spanId !== undefined && !(typeof lr.spanId === "string" && /^[0-9a-f]{16}$/.test(lr.spanId))) problems.push(`${at}.spanId must be 16 lowercase hex digits`);
        if (lr.body !== undefined) checkAnyValue(lr.body, `${at}.body`, problems);
        checkKeyValues(lr.attributes, `${at}.attributes`, problems, true);
        const seq = attr(lr.attributes, "autonomy.seq");
        const nodeId = attr(lr.attributes, "autonomy.node_id");
        const eventName = attr(lr.attributes, "event.name");
        const priority = attr(lr.attributes, "autonomy.priority");
        const event = fromAnyValue(lr.body);
        if (typeof seq !== "number" || typeof nodeId !== "string" || typeof eventName !== "string" || typeof priority !== "number" || !isObj(event)) {
          return void problems.push(`${at}: needs autonomy.seq, autonomy.node_id, event.name, autonomy.priority and a kvlist body`);
        }
        if (nodeId !== service) problems.push(`${at}: autonomy.node_id ${nodeId} is not the resource service.name ${String(service)}`);
        records.push({ seq, nodeId, eventName, priority, event });
      });
    });
  });
  return { records, problems };
}

export interface OtlpJsonLogsReceiver extends ReceiverBase {
  /** Records whose event has poison: true make the whole request 400 (a permanent refusal). */
  poison: boolean;
}

/** Only seq and priority, from the attributes, without validating: for volume tests (validation is covered elsewhere). */
function parseLight(doc: unknown): Delivered[] {
  const out: Delivered[] = [];
  for (const rl of (doc as ExportShape).resourceLogs ?? []) {
    for (const sl of rl.scopeLogs ?? []) {
      for (const lr of sl.logRecords ?? []) {
        let seq = 0;
        let priority = 0;
        for (const a of lr.attributes ?? []) {
          if (a.key === "autonomy.seq") seq = Number(a.value?.intValue);
          else if (a.key === "autonomy.priority") priority = Number(a.value?.intValue);
        }
        out.push({ seq, priority, nodeId: "", eventName: "", event: {} });
      }
    }
  }
  return out;
}
interface ExportShape {
  resourceLogs?: { scopeLogs?: { logRecords?: { attributes?: { key: string; value?: { intValue?: string } }[] }[] }[] }[];
}

/** Our OTLP/HTTP JSON logs receiver (see the module comment). */
export async function startOtlpJsonLogsReceiver(o: { record?: boolean; light?: boolean } = {}): Promise<OtlpJsonLogsReceiver> {
  const hanging = new Set<ServerResponse>();
  const r: OtlpJsonLogsReceiver = {
    url: "", arrivals: [], requests: 0, accepted: 0, violations: [], fault: undefined, beforeAccept: undefined, poison: true, close: () => Promise.resolve(),
  };
  const server = createServer((req, res) => {
    void (async () => {
      if (req.url !== "/v1/logs") return send(res, 404, { message: "not found" });
      if (req.method !== "POST") return send(res, 405, { message: "method not allowed" });
      const body = await readBody(req);
      if (!(req.headers["content-type"] ?? "").startsWith("application/json")) return send(res, 415, { message: "Content-Type must be application/json" });
      let doc: unknown;
      try {
        doc = JSON.parse(body);
      } catch {
        r.violations.push("body is not JSON");
        return send(res, 400, { message: "body is not JSON" });
      }
      const { records, problems } = o.light ? { records: parseLight(doc), problems: [] } : parseLogsRequest(doc);
      const n = ++r.requests;
      if (problems.length > 0) {
        r.violations.push(...problems);
        return send(res, 400, { message: problems.slice(0, 5).join("; ") });
      }
      const f = r.fault?.(n, records);
      if (f?.hang) return void hanging.add(res);
      if (f?.delayMs) await new Promise((w) => setTimeout(w, f.delayMs));
      if (f?.status !== undefined) return send(res, f.status, f.body ?? { message: `injected ${f.status}` }, f.retryAfter ? { "retry-after": f.retryAfter } : {});
      const bad = r.poison ? records.find((x) => x.event.poison === true) : undefined;
      if (bad) return send(res, 400, { message: `record ${bad.seq} is malformed (poison)` });
      // A client that gave up (timeout) still had its records processed, as a slow collector would: it never learns that and resends (duplicates).
      await r.beforeAccept?.(records);
      r.accepted += 1;
      if (o.record !== false) r.arrivals.push(...records);
      send(res, 200, f?.partialRejected ? { partialSuccess: { rejectedLogRecords: String(f.partialRejected), errorMessage: "injected partial success" } } : {});
    })().catch((e: unknown) => send(res, 500, { message: String(e) }));
  });
  r.url = await listen(server);
  r.close = closer(server, hanging);
  return r;
}

interface StoredEvent {
  event_id: string;
  event_type: string;
  node_id: string;
  timestamp: string;
  [k: string]: unknown;
}

export interface ControlPlaneEventsContractServer extends ReceiverBase {
  /** Stored events in insertion order (deduplicated on event_id). */
  stored: StoredEvent[];
  deduped: number;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** A test server implementing the control plane's documented POST /v1/events contract (no control plane exists yet). */
export async function startControlPlaneEventsContractServer(): Promise<ControlPlaneEventsContractServer> {
  const hanging = new Set<ServerResponse>();
  const ids = new Set<string>();
  const r: ControlPlaneEventsContractServer = {
    url: "", arrivals: [], requests: 0, accepted: 0, violations: [], fault: undefined, beforeAccept: undefined, stored: [], deduped: 0, close: () => Promise.resolve(),
  };
  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://x");
      if (url.pathname === "/v1/health") return req.method === "GET" ? send(res, 200, { status: "ok" }) : send(res, 405, { error: "method not allowed" });
      if (url.pathname !== "/v1/events") return send(res, 404, { error: "not found" });
      if (req.method === "GET") {
        const limit = Math.min(1000, Math.max(1, Number(url.searchParams.get("limit") ?? 100) || 100));
        const node = url.searchParams.get("node_id");
        const type = url.searchParams.get("event_type");
        const events = r.stored.filter((e) => (node === null || e.node_id === node) && (type === null || e.event_type === type)).reverse().slice(0, limit);
        return send(res, 200, { events, count: events.length });
      }
      if (req.method !== "POST") return send(res, 405, { error: "method not allowed" });
      const body = await readBody(req);
      let doc: unknown;
      try {
        doc = JSON.parse(body);
      } catch {
        return send(res, 400, { error: "malformed JSON" });
      }
      // The contract itself (cpapi IngestRequest, strict: an unknown field such as the old seq/priority/payload is refused).
      const parsed = IngestRequest.safeParse(doc);
      if (!parsed.success) return send(res, 400, { error: `off the cpapi contract: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}` });
      for (const [i, e] of parsed.data.events.entries()) {
        if (!RFC3339.test(e.timestamp)) return send(res, 400, { error: `events[${i}].timestamp must be RFC 3339` });
        if (e.attributes?.poison === true) return send(res, 400, { error: `events[${i}] is malformed (poison)` });
      }
      const events = parsed.data.events as StoredEvent[];
      const n = ++r.requests;
      const delivered: Delivered[] = events.map((e) => {
        const attributes = isObj(e.attributes) ? e.attributes : {};
        return { seq: Number(e.event_id.split(":").at(-1)), nodeId: e.node_id, eventName: e.event_type, priority: priorityOf(attributes), event: attributes };
      });
      const f = r.fault?.(n, delivered);
      if (f?.hang) return void hanging.add(res);
      if (f?.delayMs) await new Promise((w) => setTimeout(w, f.delayMs));
      if (f?.status !== undefined) return send(res, f.status, f.body ?? { error: `injected ${f.status}` }, f.retryAfter ? { "retry-after": f.retryAfter } : {});
      await r.beforeAccept?.(delivered);
      let inserted = 0;
      let deduped = 0;
      for (const e of events) {
        if (ids.has(e.event_id)) {
          deduped += 1;
          continue;
        }
        ids.add(e.event_id);
        r.stored.push(e);
        inserted += 1;
      }
      r.deduped += deduped;
      r.accepted += 1;
      r.arrivals.push(...delivered);
      send(res, 200, { received: events.length, inserted, deduped });
    })().catch((e: unknown) => send(res, 500, { error: String(e) }));
  });
  r.url = await listen(server);
  r.close = closer(server, hanging);
  return r;
}

/** The first arrival of each seq, in arrival order. */
export function firstArrivals(arrivals: readonly Delivered[]): Delivered[] {
  const seen = new Set<number>();
  const out: Delivered[] = [];
  for (const a of arrivals) {
    if (seen.has(a.seq)) continue;
    seen.add(a.seq);
    out.push(a);
  }
  return out;
}
