export { createLogger, REDACT_PATHS, REDACTED } from "./logger.js";
export type { LoggerOptions } from "./logger.js";
export { lazyChildLoggerFactory } from "./request-logger.js";
export type { Logger } from "pino";
