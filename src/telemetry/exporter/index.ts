// The exporter's surface inside telemetry (re-exported in part by ../index.ts).
export { Exporter } from "./exporter.js";
export type { ExporterOptions, ExporterStatus, ExporterLogger, DrainResult } from "./exporter.js";
export { OtlpHttpLogsSink } from "./sinks.js";
export type { Sink } from "./sinks.js";
export { priorityOf, eventNameOf } from "./priority.js";
export { readPos, confirmedPos } from "./pos.js";
export type { PosRead } from "./pos.js";
export { ExportError, EXPORT_ERROR_CODES } from "./errors.js";
export type { ExportErrorCode } from "./errors.js";
export { sinkFor } from "./destinations.js";
export { backoffDelay, sleep, DEFAULT_RETRY } from "./backoff.js";
export type { RetryPolicy } from "./backoff.js";
