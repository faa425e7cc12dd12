/**
 * The fleet simulator (lab code): N virtual nodes in one process, each a real
 * HTTP client of the control plane with its own state, that can be told to
 * fail, hang, see corrupt artifacts, misbehave or go offline. Talks to the
 * control plane over HTTP only (src/cpapi's client), never to its internals.
 */
export { runFleet, convergedOn, DEFAULT_BEHAVIOUR } from "./fleet.js";
export type { FleetOptions, FleetView } from "./fleet.js";
export { FAULT_KINDS, parseFaults, assignFaults, parseLabels } from "./spec.js";
export type { FaultKind, FaultRates } from "./spec.js";
export { FleetSimError, FLEETSIM_ERROR_CODES } from "./errors.js";
export type { FleetSimErrorCode } from "./errors.js";
export { summarize, progressLine } from "./summary.js";
export type { FleetSummary } from "./summary.js";
export { isLoopback, checkServer } from "./server.js";
export { corruptEnvelope, verifyRelease } from "./verify.js";
export type { FleetTrust, Verdict } from "./verify.js";
export { VirtualDevice } from "./device.js";
export type { Behaviour, DeviceConfig, DeviceStage } from "./device.js";
// The contract's names (cpapi), re-exported for the lab code that imported them from here.
export { DECISION_EVENT_TYPE, TOOL_RESULT_EVENT_TYPE } from "../cpapi/index.js";
export { syntheticReleaseContent } from "./content.js";
export { Traffic } from "./stats.js";
