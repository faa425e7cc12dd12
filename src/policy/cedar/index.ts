export { compileCedar, createCedarCompiler, cedarVersion } from "./engine.js";
export type { CedarEngineOptions } from "./engine.js";
export { CEDAR_CONTEXT_LIMITS, findUnrepresentable, toCedar, fromCedar } from "./context.js";
export type { InputProblem } from "./context.js";
