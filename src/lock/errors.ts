import { AutonomyError, ExitCodes } from "../lib/index.js";

/**
 * Every code a {@link LockError} can carry. Kept as a runtime list so a test
 * (and later the docs check) can enumerate the catalogue.
 */
export const LOCK_ERROR_CODES = [
  "LOCK_PARSE_FAILED",
  "LOCK_SCHEMA_INVALID",
  "LOCK_FINGERPRINT_FORMAT",
  "LOCK_FINGERPRINT_MISMATCH",
  "LOCK_NOT_CANONICALIZABLE",
  "LOCK_INPUT_UNREADABLE",
] as const;

/** A stable code from {@link LOCK_ERROR_CODES}. */
export type LockErrorCode = (typeof LOCK_ERROR_CODES)[number];

/** What to do about each failure; one place so every throw site says the same thing. */
const HINTS: Readonly<Record<LockErrorCode, string>> = {
  LOCK_PARSE_FAILED: "Pass an autonomy.lock.json file: a UTF-8 JSON object (regenerate it with `autonomy lock create`).",
  LOCK_SCHEMA_INVALID: "Fix or remove the listed fields, or regenerate the lock with `autonomy lock create`.",
  LOCK_FINGERPRINT_FORMAT:
    'behavioral_fingerprint must be "blake3:" + 64 lowercase hex digits; there is no SHA-256 fallback. Regenerate the lock with `autonomy lock create`.',
  LOCK_FINGERPRINT_MISMATCH:
    "The lock was changed after it was fingerprinted. Restore the original lock, or review the change and regenerate it with `autonomy lock create`.",
  LOCK_NOT_CANONICALIZABLE:
    "Only JSON data (strings, finite numbers, booleans, null, arrays, plain objects) can be fingerprinted; remove the offending value.",
  LOCK_INPUT_UNREADABLE: "Check that the input file exists and is readable by this user.",
};

/** Only a tampered lock is a verification failure (exit 4); the rest are ordinary failures. */
const VERIFICATION_CODES: ReadonlySet<LockErrorCode> = new Set(["LOCK_FINGERPRINT_MISMATCH"]);

/**
 * A failure to read, validate, fingerprint or verify an activation lock.
 *
 * ### Examples
 * ```ts
 * try { parseLock(text) } catch (e) { if (e instanceof LockError) console.error(e.code, e.hint) }
 * ```
 */
export class LockError extends AutonomyError<LockErrorCode> {
  constructor(code: LockErrorCode, message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, {
      hint: HINTS[code],
      exitCode: VERIFICATION_CODES.has(code) ? ExitCodes.verification : ExitCodes.failure,
      ...opts,
    });
  }
}
