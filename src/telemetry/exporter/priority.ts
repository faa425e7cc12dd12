/**
 * Event names and drain priorities (original-interfaces §2.3 bridge mapping, §2.4
 * drain order). Pure functions of the stored event: the WAL keeps events
 * unchanged, so the exporter derives everything it needs from them on read.
 */

/** Built-in priority levels; higher drains first. Explicit `event.priority` uses the same scale. */
export const PRIORITY = { error: 3, decision: 2, lifecycle: 1, other: 0 } as const;
/** Explicit priorities are rounded and clamped to [0, MAX_PRIORITY]: a bounded number of drain passes. */
export const MAX_PRIORITY = 9;

/** Short kinds the original bridge maps to OpenTelemetry event names. */
const KIND_NAMES: Readonly<Record<string, string>> = {
  decision: "ai.policy.decision",
  action: "ai.agent.action",
  lifecycle: "ai.agent.lifecycle",
  error: "ai.agent.error",
};

const LIFECYCLE_NAMES = new Set(["ai.deployment.lifecycle", "ai.agent.lifecycle"]);
const ERROR_LEVELS = new Set(["error", "err", "fatal", "critical", "crit", "alert", "emerg", "emergency", "panic"]);

function str(v: unknown): string | undefined {
  return typeof v === "string" && v.length > 0 ? v : undefined;
}

/**
 * The event's OpenTelemetry event name (`event.name`, and the control plane's
 * `event_type`). A dotted `type` / `event_type` / `name` is used as it is
 * (`ai.policy.decision`, `ai.deployment.lifecycle`); a short kind (`type` or
 * `kind`) maps as the original bridge: decision → ai.policy.decision, action →
 * ai.agent.action, lifecycle → ai.agent.lifecycle, error → ai.agent.error,
 * anything else → `ai.telemetry.<kind>`; no kind at all → `ai.telemetry.event`.
 */
export function eventNameOf(event: Record<string, unknown>): string {
  for (const key of ["event_type", "type", "name"] as const) {
    const v = str(event[key]);
    if (v?.includes(".")) return v;
  }
  const kind = str(event.type) ?? str(event.kind) ?? str(event.event_type);
  if (kind === undefined) return "ai.telemetry.event";
  return KIND_NAMES[kind] ?? `ai.telemetry.${kind}`;
}

/** OpenTelemetry severity (log data model): number 1–24 and its short text. */
export interface Severity {
  number: number;
  text: string;
}

const SEVERITY_BY_TEXT: Readonly<Record<string, Severity>> = {
  trace: { number: 1, text: "TRACE" },
  debug: { number: 5, text: "DEBUG" },
  info: { number: 9, text: "INFO" },
  information: { number: 9, text: "INFO" },
  notice: { number: 10, text: "INFO2" },
  warn: { number: 13, text: "WARN" },
  warning: { number: 13, text: "WARN" },
  error: { number: 17, text: "ERROR" },
  err: { number: 17, text: "ERROR" },
  critical: { number: 18, text: "ERROR2" },
  crit: { number: 18, text: "ERROR2" },
  alert: { number: 19, text: "ERROR3" },
  fatal: { number: 21, text: "FATAL" },
  emerg: { number: 21, text: "FATAL" },
  emergency: { number: 21, text: "FATAL" },
  panic: { number: 21, text: "FATAL" },
};
const TEXT_BY_NUMBER = ["UNSPECIFIED", "TRACE", "TRACE2", "TRACE3", "TRACE4", "DEBUG", "DEBUG2", "DEBUG3", "DEBUG4", "INFO", "INFO2", "INFO3", "INFO4", "WARN", "WARN2", "WARN3", "WARN4", "ERROR", "ERROR2", "ERROR3", "ERROR4", "FATAL", "FATAL2", "FATAL3", "FATAL4"];

/** The severity the event states (`severity`, `level`, `severity_text`, `severityNumber`), if any. */
function statedSeverity(event: Record<string, unknown>): Severity | undefined {
  for (const key of ["severity", "level", "severity_text", "severityText"] as const) {
    const v = event[key];
    if (typeof v === "string") {
      const s = SEVERITY_BY_TEXT[v.toLowerCase()];
      if (s) return s;
    }
  }
  for (const key of ["severity_number", "severityNumber", "severity", "level"] as const) {
    const v = event[key];
    if (typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 24) return { number: v, text: TEXT_BY_NUMBER[v] ?? "UNSPECIFIED" };
  }
  return undefined;
}

function isError(event: Record<string, unknown>, name: string): boolean {
  if (name === "ai.agent.error" || name.endsWith(".error")) return true;
  const kind = str(event.kind);
  if (kind !== undefined && ERROR_LEVELS.has(kind.toLowerCase())) return true;
  const sev = statedSeverity(event);
  return sev !== undefined && sev.number >= 17;
}

/**
 * Drain priority of an event, higher first. An explicit finite numeric
 * `event.priority` wins (rounded, clamped to 0–9). Otherwise: errors
 * (`ai.agent.error`, any `*.error`, an error kind, or a stated severity of
 * error or worse) 3; decisions (`ai.policy.decision`) and their outcomes
 * (`ai.tool.result`: what the behaviour gates count, with the decisions) 2; lifecycle
 * (`ai.deployment.lifecycle`, `ai.agent.lifecycle`) 1; everything else 0.
 */
export function priorityOf(event: Record<string, unknown>): number {
  const p = event.priority;
  if (typeof p === "number" && Number.isFinite(p)) return Math.min(MAX_PRIORITY, Math.max(0, Math.round(p)));
  const name = eventNameOf(event);
  if (isError(event, name)) return PRIORITY.error;
  if (name === "ai.policy.decision" || name === "ai.tool.result") return PRIORITY.decision;
  if (LIFECYCLE_NAMES.has(name)) return PRIORITY.lifecycle;
  return PRIORITY.other;
}

/** The OTLP severity of an event: what it states, else ERROR for errors and INFO for the rest. */
export function severityOf(event: Record<string, unknown>): Severity {
  return statedSeverity(event) ?? (isError(event, eventNameOf(event)) ? { number: 17, text: "ERROR" } : { number: 9, text: "INFO" });
}
