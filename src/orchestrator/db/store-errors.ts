import type { FastifyReply } from "fastify";
import { OrchestratorError } from "../errors.js";

/**
 * What a driver error means for the caller. The store answers two failures
 * the client can act on, with the transaction always rolled back (nothing
 * half-written): the disk is full (507 STORE_FULL: retrying now will not help)
 * and the store is busy (503 STORE_BUSY with Retry-After: retry shortly).
 */
export type StoreFailure = "full" | "busy";

/** SQLite result codes (better-sqlite3's `code`): extended codes keep the primary's prefix. */
const SQLITE_FULL = /^SQLITE_FULL/;
const SQLITE_BUSY = /^SQLITE_(BUSY|LOCKED)/;
/** PostgreSQL SQLSTATEs: disk_full; serialization_failure, deadlock_detected, lock_not_available, cannot_connect_now. */
const PG_FULL = new Set(["53100"]);
const PG_BUSY = new Set(["40001", "40P01", "55P03", "57P03"]);

/** Seconds a client should wait before retrying a busy store. */
export const BUSY_RETRY_AFTER_SECONDS = 1;

function codeOf(e: unknown): string | undefined {
  const code = typeof e === "object" && e !== null && "code" in e ? e.code : undefined;
  return typeof code === "string" ? code : undefined;
}

/** Classifies a driver error (SQLite or PostgreSQL), or undefined for anything else. */
export function storeFailureOf(e: unknown): StoreFailure | undefined {
  const code = codeOf(e);
  if (code === undefined) return undefined;
  if (SQLITE_FULL.test(code) || PG_FULL.has(code)) return "full";
  if (SQLITE_BUSY.test(code) || PG_BUSY.has(code)) return "busy";
  return undefined;
}

/**
 * Runs a store operation (one transaction) and turns a full disk into
 * STORE_FULL and a busy store into STORE_BUSY with `Retry-After`; any other
 * error passes through unchanged. Call it around the transaction, so the
 * rollback has happened before the answer goes out.
 */
export async function withStoreErrors<T>(reply: FastifyReply, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const failure = storeFailureOf(e);
    if (failure === "full") throw new OrchestratorError("STORE_FULL", `the store's disk is full; ${what} was not written (nothing of it was kept)`, { cause: e });
    if (failure === "busy") {
      void reply.header("retry-after", String(BUSY_RETRY_AFTER_SECONDS));
      throw new OrchestratorError("STORE_BUSY", `the store is busy (another writer holds the lock); ${what} was not written (nothing of it was kept)`, { cause: e });
    }
    throw e;
  }
}
