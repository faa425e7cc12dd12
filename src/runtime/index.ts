export type { ToolCall, ToolOutput, Tool, PolicySource, DecisionEvent, DecisionSink, InterceptResult } from "./types.js";
export { RuntimeError, RUNTIME_ERROR_CODES } from "./errors.js";
export type { RuntimeErrorCode } from "./errors.js";
