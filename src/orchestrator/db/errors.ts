import { errnoCode } from "../../lib/index.js";

/**
 * True when a driver error is a unique/primary-key violation: SQLite's
 * SQLITE_CONSTRAINT_UNIQUE / _PRIMARYKEY, PostgreSQL's SQLSTATE 23505. Lets an
 * insert race be decided by the database and then answered (200 / 409).
 */
export function isUniqueViolation(e: unknown): boolean {
  const code = errnoCode(e);
  return code === "23505" || code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY";
}

/**
 * True when a driver error means "the store is busy, try again": SQLite's
 * SQLITE_BUSY* / SQLITE_LOCKED*, PostgreSQL's lock_not_available (55P03),
 * serialization_failure (40001), deadlock_detected (40P01), too_many_connections
 * (53300) and cannot_connect_now (57P03). Answered 503 with Retry-After.
 */
export function isStoreBusy(e: unknown): boolean {
  const code = errnoCode(e);
  if (code === undefined) return false;
  return code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED") || ["55P03", "40001", "40P01", "53300", "57P03"].includes(code);
}
