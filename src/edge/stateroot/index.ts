export { stateRootPaths, walSteadyStateEvidence } from "./paths.js";
export type { StateRootPaths } from "./paths.js";
export { initStateRoot } from "./init.js";
