// Evidence: seed 002's core invariant matrix (`autonomy lab portability`) — the four
// steps per file-system cell and the evidence directory they leave behind — and its
// wal_verify.json report format (also written by `autonomy wal verify`).
// Tests of one step import its file by path.
export { runPortability, FS_CELL_MODES } from "./portability.js";
export type { PortabilityOptions, PortabilitySummary, FsCellsMode } from "./portability.js";
export { MAX_SEED } from "./harness.js";
export { goArch, shellLine } from "./platform.js";
export { walVerifyReport } from "./report.js";
export type { WalVerifyReport, WalVerifyReportOptions, ReportViolation, ReportIteration, RenameAtomic } from "./report.js";
