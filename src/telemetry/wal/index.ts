// The WAL's surface inside telemetry (re-exported in part by ../index.ts; the
// exporter imports from here). Tests of one WAL unit import that file by path.
export { Wal, DEFAULT_SEGMENT_BYTES } from "./wal.js";
export type { OpenWalOptions } from "./wal.js";
export { LiveWal } from "./live.js";
export { appendJsonLines } from "./append-lines.js";
export type { WalEntry } from "./codec.js";
export { encodeFrame, encodeSafeSeq, decodeSafeSeq } from "./codec.js";
export { WalFailHard, WalError, WAL_FAIL_HARD_CAUSES, WAL_ERROR_CODES } from "./errors.js";
export { requireWalDir } from "./existing-dir.js";
export type { WalFailHardCause, WalErrorCode } from "./errors.js";
export { nodeWalFs } from "./fs.js";
export type { WalFs, WalFile, WalReadFile } from "./fs.js";
export type { WalLogger } from "./logger.js";
export { LEGACY_UPGRADE_ENV, OPERATOR_RESET_ENV } from "./open.js";
export { walPaths } from "./paths.js";
export { removeStaleTemp } from "./stale-temp.js";
export { readGeneration } from "./generation.js";
export { besideWalDir, besideWrite, canonicalWalDir } from "./beside.js";
export type { Generation } from "./generation.js";
export { encodePosition, decodePosition, confirmedIn } from "./position.js";
export type { Position } from "./position.js";
export { readBase } from "./segments.js";
export { inspectWal, VERIFY_INVARIANTS } from "./verify.js";
export type { WalInspection, VerifyInvariant } from "./verify.js";
export { WalFileReader, readCommitted, inspectWalDir } from "./reader.js";
export type { ScannedEntry, ScanOptions } from "./reader.js";
