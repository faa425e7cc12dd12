// Evidence: seed 002's core invariant matrix (`autonomy lab portability`) — the four
// steps per file-system cell and the evidence directory they leave behind.
export { runPortability, planCells, claimRunDir, exitCodeFor, FS_CELL_MODES } from "./portability.js";
export type { PortabilityOptions, PortabilitySummary, CellOutcome, CellStatus, FsCellsMode } from "./portability.js";
export { runCellSteps } from "./cell.js";
export type { CellHooks, CellReport, CellStepsInput } from "./cell.js";
export { runSelfTests, SELF_TESTS } from "./self-tests.js";
export type { SelfTest, SelfTestResult, SelfTestContext } from "./self-tests.js";
export { runCrashHarness, iterationRng, MAX_SEED } from "./harness.js";
export type { HarnessIteration, HarnessResult } from "./harness.js";
export { runFixtureVerify, runRenameCheck, FIXTURE_ENTRIES } from "./steps.js";
export { crossCheck, compare as compareVerdicts, INDEPENDENT_VERIFIER } from "./independent.js";
export type { IndependentResult, IndependentOptions } from "./independent.js";
export type { FixtureResult, RenameResult } from "./steps.js";
export { probeLoop, setupLoop, LoopSetupError, LOOP_FS, LOOP_IMAGE_BYTES } from "./loop.js";
export type { LoopFs, LoopMount, Probe } from "./loop.js";
export { goArch, detectFsType, parseMountinfoLine, fsSegment, dmesgSnapshot, renderDmesg, shellLine, shellQuote, which } from "./platform.js";
export type { FsType } from "./platform.js";
export { CellLog } from "./log.js";
export type { Progress } from "./log.js";
export { GOLDEN_LOCK_JSON, GOLDEN_PAYLOAD, GOLDEN_FINGERPRINT, BLAKE3_VECTORS } from "./golden.js";
export { walVerifyReport } from "./report.js";
export type { WalVerifyReport, WalVerifyReportOptions, ReportViolation, ReportIteration, RenameAtomic } from "./report.js";
