// Telemetry's public surface: what other domains, the CLI and benches use.
// Tests of one internal unit import it by path instead of widening this list.

// The write-ahead log (seed 001) and its operator-facing reads.
export { Wal, DEFAULT_SEGMENT_BYTES } from "./wal/index.js";
export type { OpenWalOptions, WalEntry } from "./wal/index.js";
export { LiveWal } from "./wal/index.js";
export { appendJsonLines } from "./wal/index.js";
export { walPaths, nodeWalFs, readBase } from "./wal/index.js";
export type { WalFs, WalFile, WalReadFile, WalLogger } from "./wal/index.js";
export { encodeFrame, encodeSafeSeq, decodeSafeSeq } from "./wal/index.js";
export { readGeneration, encodePosition, decodePosition } from "./wal/index.js";
export type { Generation, Position } from "./wal/index.js";
export { WalError, WalFailHard, WAL_ERROR_CODES, WAL_FAIL_HARD_CAUSES, LEGACY_UPGRADE_ENV, OPERATOR_RESET_ENV } from "./wal/index.js";
export { requireWalDir } from "./wal/index.js";
export type { WalErrorCode, WalFailHardCause } from "./wal/index.js";
export { WalFileReader, inspectWal, inspectWalDir, readCommitted, VERIFY_INVARIANTS } from "./wal/index.js";
export type { WalInspection, VerifyInvariant } from "./wal/index.js";

// The exporter: WAL → OTLP / control plane, its position and its reader.
export { Exporter, ExportError, EXPORT_ERROR_CODES, OtlpHttpLogsSink, sinkFor } from "./exporter/index.js";
export type { ExporterOptions, ExporterLogger, ExporterStatus, DrainResult, ExportErrorCode, Sink } from "./exporter/index.js";
export { readPos, confirmedPos } from "./exporter/index.js";
export type { PosRead } from "./exporter/index.js";
export { priorityOf, eventNameOf } from "./exporter/index.js";
// Capped exponential backoff with jitter: the exporter's, reused by the node's release poller.
export { backoffDelay, sleep, DEFAULT_RETRY } from "./exporter/index.js";
export type { RetryPolicy } from "./exporter/index.js";
