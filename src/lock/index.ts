export { LockError, LOCK_ERROR_CODES } from "./errors.js";
export type { LockErrorCode } from "./errors.js";
export { activationLockSchema, FINGERPRINT_RE } from "./schema.js";
export type { ActivationLock, LockContent } from "./schema.js";
export { canonicalJson, computeFingerprint, fingerprintPayload } from "./fingerprint.js";
export { toActivationLock } from "./validate.js";
export { createLock, parseLock, verifyLock, serializeLock, hashInputFile } from "./lock.js";
export type { CreateLockOptions, InputHashAlgorithm } from "./lock.js";
