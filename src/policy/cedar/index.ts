export { compileCedar, createCedarCompiler, cedarVersion } from "./engine.js";
export type { CedarEngineOptions } from "./engine.js";
export { CEDAR_CONTEXT_LIMITS } from "./context.js";
