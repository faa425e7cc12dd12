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

