export type { EngineKind, EntityRef, DecisionRequest, Decision, EngineDecision, PolicyEngine, PolicyFile, EngineCompiler, BundleManifest, PolicyBundle, LoadedPolicy } from "./types.js";
export { PolicyError, POLICY_ERROR_CODES } from "./errors.js";
export type { PolicyErrorCode } from "./errors.js";
