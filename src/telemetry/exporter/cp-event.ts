/**
 * One WAL entry as the control plane's IngestEvent (src/cpapi/events.ts):
 * the exact shapes are in docs/control-plane.md "Event shapes".
 *
 * Every field is made valid here, so a WAL event can never keep the control
 * plane refusing a batch for something the node controls:
 *   - event_type: the event name, characters outside the contract's set
 *     replaced by `_`, at most 128;
 *   - timestamp: the event's own time when it is a valid RFC 3339 instant, else
 *     the export time;
 *   - release_id / lock_fingerprint: lifted only when they match the contract
 *     (they stay in the attributes either way);
 *   - attributes: the event as stored in the WAL, bounded to
 *     MAX_EVENT_ATTRIBUTES_BYTES; a larger one is sent truncated with a
 *     `_truncated` marker ({@link boundedAttributes}) instead of blocking the WAL.
 * What the server may still refuse (a `__proto__` key, nesting deeper than its
 * parser takes) is dead-lettered by the exporter (docs/wal.md).
 */
import type { IngestEvent } from "../../cpapi/index.js";
import { LockFingerprint, MAX_EVENT_ATTRIBUTES_BYTES, ReleaseId, Timestamp } from "../../cpapi/index.js";
import type { ExportRecord } from "./record.js";
import { eventIdOf, eventTimeNanos, nanosToRfc3339 } from "./record.js";

/** Keys a truncated event keeps first: what the control plane's behaviour metrics read (docs/control-plane.md). */
const ESSENTIAL_KEYS = ["type", "kind", "event_type", "decision", "tool", "ok", "error_code", "phase", "release_id", "lock_fingerprint", "sequence", "agent_id", "transport", "policy_ref", "reason"] as const;
/** Longest string a truncated event keeps per field. */
const KEPT_STRING_CHARS = 512;

const TYPE_CHARS = /[^A-Za-z0-9_.:-]/g;

/** The event name as a contract event type: `[A-Za-z0-9_.:-]{1,128}`. */
export function ingestEventType(name: string): string {
  const t = name.replace(TYPE_CHARS, "_").slice(0, 128);
  return t === "" ? "ai.telemetry.event" : t;
}

function jsonBytes(v: unknown): number {
  return Buffer.byteLength(JSON.stringify(v), "utf8");
}

/** A field a truncated event can keep as it is: a scalar, or a short string. */
function smallScalar(v: unknown): boolean {
  if (v === null || typeof v === "boolean") return true;
  if (typeof v === "number") return Number.isFinite(v);
  return typeof v === "string" && v.length <= KEPT_STRING_CHARS;
}

/**
 * The event, or when its JSON is over `max` bytes a truncated copy: its
 * small scalar fields (objects, arrays and long strings dropped), and if that
 * is still too large only the essential ones (strings cut to 512 characters),
 * plus `_truncated: {original_bytes, dropped_keys}`. Built with
 * Object.fromEntries, so a `__proto__` key stays an own property (never the
 * prototype setter).
 */
export function boundedAttributes(event: Record<string, unknown>, max = MAX_EVENT_ATTRIBUTES_BYTES): Record<string, unknown> {
  const original = jsonBytes(event);
  if (original <= max) return event;
  const entries = Object.entries(event);
  const small = entries.filter(([k, v]) => k.length <= 128 && smallScalar(v));
  const dropped = (kept: [string, unknown][]): string[] => entries.map(([k]) => k).filter((k) => !kept.some(([j]) => j === k)).map((k) => k.slice(0, 128)).slice(0, 32);
  const marked = (kept: [string, unknown][]): Record<string, unknown> => Object.fromEntries([...kept, ["_truncated", { original_bytes: original, dropped_keys: dropped(kept) }]]);
  const first = marked(small);
  if (jsonBytes(first) <= max) return first;
  const essential = ESSENTIAL_KEYS.flatMap((k): [string, unknown][] => {
    const v = event[k];
    if (!Object.hasOwn(event, k) || !(v === null || typeof v === "boolean" || typeof v === "string" || (typeof v === "number" && Number.isFinite(v)))) return [];
    return [[k, typeof v === "string" ? v.slice(0, KEPT_STRING_CHARS) : v]];
  });
  const second = marked(essential);
  return jsonBytes(second) <= max ? second : { _truncated: { original_bytes: original, dropped_keys: [] } };
}

/** The event's own time as a contract timestamp, else `nowMs`'s. */
function timestampOf(event: Record<string, unknown>, nowMs: number): string {
  try {
    const ns = eventTimeNanos(event);
    if (ns !== undefined) {
      const t = nanosToRfc3339(ns);
      if (Timestamp.safeParse(t).success) return t;
    }
  } catch {
    // A time beyond what Date can hold (RangeError): not a usable time; the export time stands in.
  }
  return new Date(nowMs).toISOString();
}

/** One WAL entry as a cpapi IngestEvent. */
export function toIngestEvent(r: ExportRecord, nowMs: number): IngestEvent {
  const ev: IngestEvent = {
    event_id: eventIdOf(r),
    event_type: ingestEventType(r.eventName),
    node_id: r.nodeId,
    timestamp: timestampOf(r.event, nowMs),
    attributes: boundedAttributes(r.event),
  };
  if (ReleaseId.safeParse(r.event.release_id).success) ev.release_id = r.event.release_id as string;
  if (LockFingerprint.safeParse(r.event.lock_fingerprint).success) ev.lock_fingerprint = r.event.lock_fingerprint as string;
  return ev;
}


