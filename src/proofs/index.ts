/**
 * Proof suites (seed 000's VAL07–VAL11): each runs against a real `autonomy
 * serve` child process on SQLite or PostgreSQL and writes DIR/<suite>.json
 * with measured checks (`autonomy lab run`, docs/proofs.md).
 */
export { SUITE_IDS, thresholdOf, atMost, atLeast, equals, quantile, round1 } from "./suite.js";
export type { SuiteId, Backend, Check, SuiteContext, EdgeSuiteContext, EdgeSuite, FleetSuite, Suite, SuiteParams } from "./suite.js";
export { launchControlPlane, maskTokens, AUTONOMY_BIN } from "./cp-process.js";
export type { ControlPlaneProcess, LaunchOptions, LaunchedControlPlane } from "./cp-process.js";
export { runProofs } from "./runner.js";
export type { DbChoice, RunProofsOptions } from "./runner.js";
export { environmentOf, newRunId, removeReport, renderReport, writeReport } from "./report.js";
export type { ProofReport, Environment } from "./report.js";
export { SUITES, suiteOf, builtSuites, isSuiteId } from "./suites/index.js";
export { ProofError, PROOF_ERROR_CODES } from "./errors.js";
export type { ProofErrorCode } from "./errors.js";
export { startImpairProxy, NO_IMPAIRMENT } from "./impair-proxy.js";
export type { ImpairProxy, Impairment, ProxyStats } from "./impair-proxy.js";
