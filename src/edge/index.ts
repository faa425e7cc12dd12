export { stateRootPaths, walSteadyStateEvidence, initStateRoot } from "./stateroot/index.js";
export type { StateRootPaths } from "./stateroot/index.js";
