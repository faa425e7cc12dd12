import type { WalEntry } from "../wal/index.js";
import { eventNameOf, priorityOf } from "./priority.js";

/** One committed WAL entry on its way to a sink. */
export interface ExportRecord {
  seq: number;
  /** The WAL generation the seq belongs to (docs/wal.md "Generations"). */
  generation: string;
  /** The node the WAL belongs to: OTLP `service.name` / `autonomy.node_id`, control-plane `node_id`. */
  nodeId: string;
  /** The event exactly as stored in the WAL. */
  event: Record<string, unknown>;
  /** priorityOf(event). */
  priority: number;
  /** eventNameOf(event). */
  eventName: string;
  /** Size of the WAL payload in bytes: what batch and in-flight limits count. */
  bytes: number;
}

export function toExportRecord(entry: WalEntry, nodeId: string, bytes: number, generation: string): ExportRecord {
  return { seq: entry.seq, generation, nodeId, event: entry.event, priority: priorityOf(entry.event), eventName: eventNameOf(entry.event), bytes };
}

/**
 * The idempotency key receivers dedupe on: `<node_id>:wal:<generation>:<seq>`
 * (the original bridge's `<node_id>:wal:<seq>` plus the WAL generation, DESIGN:
 * "idempotent on the event id (node, WAL generation, seq)"). A first run or an
 * operator reset restarts seq at 1 in a new generation, so its events get new
 * ids and a deduplicating receiver keeps them.
 */
export function eventIdOf(r: Pick<ExportRecord, "nodeId" | "seq" | "generation">): string {
  return `${r.nodeId}:wal:${r.generation}:${r.seq}`;
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/i;

/**
 * The time the event says it happened, in Unix nanoseconds: `timestamp` or
 * `time` as RFC 3339 (nanosecond fractions kept) or as a number of Unix
 * milliseconds. Undefined when the event carries no usable time.
 */
export function eventTimeNanos(event: Record<string, unknown>): bigint | undefined {
  for (const key of ["timestamp", "time"] as const) {
    const v = event[key];
    if (typeof v === "string") {
      const m = RFC3339.exec(v);
      if (!m) continue;
      const ms = Date.parse(`${m[1] ?? ""}${(m[3] ?? "Z").toUpperCase()}`);
      if (!Number.isFinite(ms)) continue;
      const frac = BigInt((m[2] ?? "").padEnd(9, "0") || "0");
      return BigInt(ms) * 1_000_000n + frac;
    }
    if (typeof v === "number" && Number.isFinite(v) && v >= 0) return BigInt(Math.round(v * 1000)) * 1000n;
  }
  return undefined;
}

/** Unix nanoseconds → RFC 3339 UTC with nanoseconds trimmed of trailing zeros (at least milliseconds). */
export function nanosToRfc3339(ns: bigint): string {
  const ms = ns / 1_000_000n;
  const base = new Date(Number(ms)).toISOString().slice(0, 19);
  let frac = (ns % 1_000_000_000n).toString().padStart(9, "0").replace(/0+$/, "");
  if (frac.length < 3) frac = frac.padEnd(3, "0");
  return `${base}.${frac}Z`;
}
