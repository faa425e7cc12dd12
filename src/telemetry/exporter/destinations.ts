import type { Clock } from "../../lib/index.js";
import { ControlPlaneEventsSink, FanoutSink, OtlpHttpLogsSink } from "./sinks.js";
import type { Compression, Sink } from "./sinks.js";

/**
 * OTLP headers from OTEL_EXPORTER_OTLP_HEADERS / OTEL_EXPORTER_OTLP_LOGS_HEADERS
 * (`k1=v1,k2=v2`, values URL-encoded), as the OpenTelemetry SDKs read them.
 * Credentials never come from flags or config files: they would show in `ps`
 * or be copied with the config.
 */
export function otlpHeadersFromEnv(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_LOGS_HEADERS"]) {
    for (const pair of (env[name] ?? "").split(",")) {
      const i = pair.indexOf("=");
      if (i <= 0) continue;
      const key = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      if (key) out[key] = decodeURIComponent(value);
    }
  }
  return out;
}

/**
 * OTLP request compression from OTEL_EXPORTER_OTLP_LOGS_COMPRESSION /
 * OTEL_EXPORTER_OTLP_COMPRESSION ("gzip" or "none"), as the SDKs read it; the
 * logs-specific variable wins. Anything else is ignored (none).
 */
export function otlpCompressionFromEnv(env: Readonly<Record<string, string | undefined>>): Compression | undefined {
  for (const name of ["OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"]) {
    const v = env[name]?.trim().toLowerCase();
    if (v === "gzip" || v === "none") return v;
  }
  return undefined;
}

export interface Destinations {
  /** OTLP/HTTP collector base URL (records go to <url>/v1/logs). */
  otlpUrl?: string;
  /** Control plane base URL (events go to <url>/v1/events). */
  controlPlaneUrl?: string;
  /** The node credential for the control plane (bearer): sent only there. */
  controlPlaneToken?: string;
  /** PEM of the private CA of the control plane's certificate (`--server-ca`): the only CA trusted for it. */
  controlPlaneCa?: string;
  /** OTLP service.name. */
  nodeId: string;
  timeoutMs?: number;
  /** OTLP request compression; default from the OTEL variables, else none. */
  compression?: Compression;
  env?: Readonly<Record<string, string | undefined>>;
  /** Clock of the sinks (observed times, Retry-After dates). Default: the system clock. */
  clock?: Clock;
}

/** The sink for the configured destinations (both: fan-out, each must confirm); undefined when none is configured. */
export function sinkFor(d: Destinations): Sink | undefined {
  const sinks: Sink[] = [];
  const timeout = { ...(d.timeoutMs !== undefined ? { timeoutMs: d.timeoutMs } : {}), ...(d.clock ? { clock: d.clock } : {}) };
  const env = d.env ?? process.env;
  const compression = d.compression ?? otlpCompressionFromEnv(env) ?? "none";
  if (d.otlpUrl) sinks.push(new OtlpHttpLogsSink({ url: d.otlpUrl, headers: otlpHeadersFromEnv(env), serviceName: d.nodeId, compression, ...timeout }));
  if (d.controlPlaneUrl) sinks.push(new ControlPlaneEventsSink({ url: d.controlPlaneUrl, ...(d.controlPlaneToken !== undefined ? { token: d.controlPlaneToken } : {}), ...(d.controlPlaneCa !== undefined ? { ca: d.controlPlaneCa } : {}), ...timeout }));
  if (sinks.length === 0) return undefined;
  return sinks.length === 1 ? sinks[0] : new FanoutSink(sinks);
}
