/**
 * OTLP/HTTP JSON encoding of logs (opentelemetry-proto, `ExportLogsServiceRequest`
 * with the protobuf JSON mapping as OTLP/HTTP specifies it: lowerCamelCase field
 * names, 64-bit integers as decimal strings, enums as numbers, trace and span
 * ids as lowercase hex, not base64). Written by hand: it is a small, stable,
 * documented format and the SDK's exporter would bring its own batching and
 * in-memory queue, which is exactly what the WAL replaces.
 */
import { RUNTIME_VERSION } from "../../lib/index.js";
import type { ExportRecord } from "./record.js";
import { eventIdOf, eventTimeNanos } from "./record.js";
import { severityOf } from "./priority.js";

export type AnyValue =
  | { stringValue: string }
  | { boolValue: boolean }
  | { intValue: string }
  | { doubleValue: number }
  | { arrayValue: { values: AnyValue[] } }
  | { kvlistValue: { values: KeyValue[] } }
  | { bytesValue: string }
  | Record<string, never>;

export interface KeyValue {
  key: string;
  value: AnyValue;
}

export interface OtlpLogRecord {
  timeUnixNano: string;
  observedTimeUnixNano: string;
  severityNumber: number;
  severityText: string;
  body: AnyValue;
  attributes: KeyValue[];
  eventName: string;
  traceId?: string;
  spanId?: string;
}

export interface ExportLogsServiceRequest {
  resourceLogs: {
    resource: { attributes: KeyValue[] };
    scopeLogs: { scope: { name: string; version: string }; logRecords: OtlpLogRecord[] }[];
  }[];
}

/** The instrumentation scope every exported record carries. */
export const OTLP_SCOPE = { name: "autonomyops.telemetry.exporter", version: RUNTIME_VERSION } as const;

/** A JSON value as an OTLP AnyValue: safe integers → intValue, other numbers → doubleValue, null → empty value. */
export function toAnyValue(v: unknown): AnyValue {
  if (typeof v === "string") return { stringValue: v };
  if (typeof v === "boolean") return { boolValue: v };
  if (typeof v === "number") return Number.isSafeInteger(v) ? { intValue: String(v) } : Number.isFinite(v) ? { doubleValue: v } : { stringValue: String(v) };
  if (Array.isArray(v)) return { arrayValue: { values: v.map(toAnyValue) } };
  if (typeof v === "object" && v !== null) return { kvlistValue: { values: Object.entries(v).map(([key, value]) => ({ key, value: toAnyValue(value) })) } };
  return {};
}

/** The inverse of toAnyValue (for receivers and tests); undefined for an AnyValue that is not exactly one of the kinds. */
export function fromAnyValue(a: unknown): unknown {
  if (typeof a !== "object" || a === null || Array.isArray(a)) return undefined;
  const keys = Object.keys(a);
  if (keys.length === 0) return null;
  if (keys.length !== 1) return undefined;
  const o = a as Record<string, unknown>;
  if (typeof o.stringValue === "string") return o.stringValue;
  if (typeof o.boolValue === "boolean") return o.boolValue;
  if (typeof o.intValue === "string" && /^-?\d+$/.test(o.intValue)) return Number(o.intValue);
  if (typeof o.intValue === "number" && Number.isInteger(o.intValue)) return o.intValue;
  if (typeof o.doubleValue === "number") return o.doubleValue;
  if (typeof o.arrayValue === "object" && o.arrayValue !== null) {
    const vs = (o.arrayValue as { values?: unknown }).values ?? [];
    return Array.isArray(vs) ? vs.map(fromAnyValue) : undefined;
  }
  if (typeof o.kvlistValue === "object" && o.kvlistValue !== null) {
    const vs = (o.kvlistValue as { values?: unknown }).values ?? [];
    if (!Array.isArray(vs)) return undefined;
    const out: Record<string, unknown> = {};
    // defineProperty, not assignment: a key "__proto__" (legal in JSON) must stay a key, not replace the prototype.
    for (const kv of vs as { key?: unknown; value?: unknown }[]) {
      if (typeof kv.key === "string") Object.defineProperty(out, kv.key, { value: fromAnyValue(kv.value), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  if (typeof o.bytesValue === "string") return o.bytesValue;
  return undefined;
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);

function hexId(event: Record<string, unknown>, keys: readonly string[], re: RegExp, zero: string): string | undefined {
  for (const k of keys) {
    const v = event[k];
    if (typeof v === "string") {
      const h = v.toLowerCase();
      if (re.test(h) && h !== zero) return h;
    }
  }
  return undefined;
}

/** One WAL record as an OTLP log record. `observedNanos` is the export time. */
export function toOtlpLogRecord(r: ExportRecord, observedNanos: bigint): OtlpLogRecord {
  const sev = severityOf(r.event);
  const rec: OtlpLogRecord = {
    timeUnixNano: (eventTimeNanos(r.event) ?? 0n).toString(),
    observedTimeUnixNano: observedNanos.toString(),
    severityNumber: sev.number,
    severityText: sev.text,
    body: toAnyValue(r.event),
    attributes: [
      { key: "event.name", value: { stringValue: r.eventName } },
      { key: "autonomy.seq", value: { intValue: String(r.seq) } },
      { key: "autonomy.wal_generation", value: { stringValue: r.generation } },
      { key: "event.id", value: { stringValue: eventIdOf(r) } },
      { key: "autonomy.node_id", value: { stringValue: r.nodeId } },
      { key: "autonomy.priority", value: { intValue: String(r.priority) } },
    ],
    eventName: r.eventName,
  };
  const traceId = hexId(r.event, ["trace_id", "traceId"], HEX32, ZERO_TRACE);
  const spanId = hexId(r.event, ["span_id", "spanId"], HEX16, ZERO_SPAN);
  if (traceId) rec.traceId = traceId;
  if (traceId && spanId) rec.spanId = spanId;
  return rec;
}

/** A batch as one ExportLogsServiceRequest: one resource (service.name = serviceName), one scope. */
export function encodeLogsRequest(records: readonly ExportRecord[], serviceName: string, observedNanos: bigint): ExportLogsServiceRequest {
  return {
    resourceLogs: [{
      resource: { attributes: [{ key: "service.name", value: { stringValue: serviceName } }] },
      scopeLogs: [{ scope: { ...OTLP_SCOPE }, logRecords: records.map((r) => toOtlpLogRecord(r, observedNanos)) }],
    }],
  };
}
