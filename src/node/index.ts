// The node domain: the one owner of a node's state root (layout, steady-state list, state.json and its
// atomic commit, bundle store, activation record and commit). Above policy and telemetry, below runtime.
export { stateRootPaths, walSteadyStateEvidence, nodeWalLocation, telemetryWalDir, policyPaths, bundlePath, releaseStorePath } from "./layout.js";
export type { StateRootPaths } from "./layout.js";
export { initStateRoot } from "./init.js";
export { readNodeState, commitNodeState, EMPTY_STATE, MAX_EQUIVOCATIONS, MAX_KEY_ROTATIONS } from "./state.js";
export type { NodeState, ActivationRecord, EquivocationRecord, KeyRotationRecord } from "./state.js";
export { readTrustRoot, requireTrustRoot, setTrustRoot, meetsThreshold } from "./trust.js";
export type { TrustRoot, TrustChange, TrustSetResult } from "./trust.js";
export { judgeRelease } from "./release-rules.js";
export type { Verdict } from "./release-rules.js";
export { storeBundle, openSlot, collectBundles } from "./bundle-store.js";
export { loadPolicy } from "./policy-load.js";
export type { LoadOptions, LoadResult } from "./policy-load.js";
export { commitActivation, checkRelease, recordEquivocation, openReleaseStore } from "./activation.js";
export type { ActivationCommit, ActivationCommitOptions, ActivationOffer } from "./activation.js";
export { LivePolicy } from "./live-policy.js";
export type { LivePolicyEvent, LivePolicyOptions } from "./live-policy.js";
export { NodeError, NODE_ERROR_CODES } from "./errors.js";
export type { NodeErrorCode } from "./errors.js";
export { createToken, listTokens, revokeToken, TokenVerifier, AGENT_ID_RE } from "./tokens.js";
export type { CreatedToken, TokenInfo, TokenCheck } from "./tokens.js";
export { readControlPlane, writeControlPlane } from "./control-plane.js";
export type { ControlPlaneFile } from "./control-plane.js";
