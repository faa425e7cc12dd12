import type { z } from "zod";
import { fieldProblems, formatProblems } from "../lib/index.js";
import { LockError } from "./errors.js";
import { activationLockSchema } from "./schema.js";
import type { ActivationLock, LockContent } from "./schema.js";

/** True when the only thing wrong is a present-but-malformed fingerprint: that has its own code. */
function onlyFingerprintFormat(value: object, issues: readonly z.core.$ZodIssue[]): boolean {
  return (
    Object.hasOwn(value, "behavioral_fingerprint") &&
    issues.every((i) => i.path.length === 1 && i.path[0] === "behavioral_fingerprint")
  );
}

function schemaError(value: object, issues: readonly z.core.$ZodIssue[]): LockError {
  if (onlyFingerprintFormat(value, issues)) {
    return new LockError(
      "LOCK_FINGERPRINT_FORMAT",
      'behavioral_fingerprint is not "blake3:" followed by 64 lowercase hex digits.',
      { details: { fields: ["behavioral_fingerprint"] } },
    );
  }
  const problems = fieldProblems(issues);
  const list = formatProblems(problems);
  return new LockError("LOCK_SCHEMA_INVALID", `The lock has ${problems.length} invalid field(s): ${list}.`, {
    details: { fields: problems.map((p) => p.field) },
  });
}

function assertObject(value: unknown): asserts value is object {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    const kind = value === null ? "null" : Array.isArray(value) ? "an array" : `a ${typeof value}`;
    throw new LockError("LOCK_PARSE_FAILED", `The lock must be a JSON object, not ${kind}.`);
  }
}

/**
 * Validates `value` against {@link activationLockSchema} and returns a fresh
 * copy. Collects every invalid field before throwing `LOCK_SCHEMA_INVALID`
 * (or `LOCK_FINGERPRINT_FORMAT` when only the fingerprint is malformed).
 */
export function toActivationLock(value: unknown): ActivationLock {
  assertObject(value);
  const r = activationLockSchema.safeParse(value);
  if (!r.success) throw schemaError(value, r.error.issues);
  return r.data;
}

const contentSchema = activationLockSchema.omit({ behavioral_fingerprint: true });

/** Validates a lock's content before it is fingerprinted (used when creating a lock). */
export function toLockContent(value: unknown): LockContent {
  assertObject(value);
  const r = contentSchema.safeParse(value);
  if (!r.success) throw schemaError(value, r.error.issues);
  return r.data;
}
