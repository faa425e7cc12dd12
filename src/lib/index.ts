export { AutonomyError, UsageError, ExitCodes, hasCode, errnoCode } from "./errors.js";
export type { ExitCode, AutonomyErrorOptions } from "./errors.js";
export { writeFileAtomic, fsyncDir } from "./atomic-file.js";
export { sha256Digest, isSha256Digest, safeEqual } from "./digest.js";
export { fieldProblems, formatFieldPath } from "./field-problems.js";
export type { FieldProblem } from "./field-problems.js";
export { RUNTIME_VERSION } from "./version.js";
