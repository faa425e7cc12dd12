import type { FastifyReply } from "fastify";
import { errnoCode } from "../../lib/index.js";
import { OrchestratorError } from "../errors.js";

/**
 * What a driver error means for the caller. The store answers two failures
 * the client can act on, with the transaction always rolled back (nothing
 * half-written): the disk is full (507 STORE_FULL: retrying now will not help)
 * and the store is busy (503 STORE_BUSY with Retry-After: retry shortly).
 * One mapping for every route: the app's error mapper (app.ts) and the areas
 * that name what was not written (withStoreErrors) both use it.
 */
export type StoreFailure = "full" | "busy";

/** SQLite SQLITE_FULL (extended codes keep the prefix); PostgreSQL disk_full. */
function isStoreFull(e: unknown): boolean {
  const code = errnoCode(e);
  return code !== undefined && (code.startsWith("SQLITE_FULL") || code === "53100");
}

/**
 * SQLite SQLITE_BUSY* / SQLITE_LOCKED* (past busy_timeout); PostgreSQL lock_not_available
 * (55P03, past lock_timeout), serialization_failure (40001), deadlock_detected (40P01),
 * too_many_connections (53300), cannot_connect_now (57P03).
 */
function isStoreBusy(e: unknown): boolean {
  const code = errnoCode(e);
  return code !== undefined && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED") || ["55P03", "40001", "40P01", "53300", "57P03"].includes(code));
}

/** Seconds a client should wait before retrying a busy store. */
export const BUSY_RETRY_AFTER_SECONDS = 1;

/** Classifies a driver error (SQLite or PostgreSQL), or undefined for anything else. */
export function storeFailureOf(e: unknown): StoreFailure | undefined {
  if (isStoreFull(e)) return "full";
  if (isStoreBusy(e)) return "busy";
  return undefined;
}

/**
 * The answer for a driver error: STORE_FULL, or STORE_BUSY with
 * `Retry-After` set on `reply`; undefined for any other error.
 */
export function storeErrorOf(e: unknown, reply: FastifyReply, what = "the request"): OrchestratorError | undefined {
  const failure = storeFailureOf(e);
  if (failure === "full") return new OrchestratorError("STORE_FULL", `the store's disk is full; ${what} was not written (nothing of it was kept)`, { cause: e });
  if (failure === "busy") {
    void reply.header("retry-after", String(BUSY_RETRY_AFTER_SECONDS));
    return new OrchestratorError("STORE_BUSY", `the store is busy (another writer holds the lock); ${what} was not written (nothing of it was kept)`, { cause: e });
  }
  return undefined;
}

/**
 * Runs a store operation (one transaction) and turns a full disk into
 * STORE_FULL and a busy store into STORE_BUSY naming `what`; any other error
 * passes through unchanged. Call it around the transaction, so the rollback
 * has happened before the answer goes out.
 */
export async function withStoreErrors<T>(reply: FastifyReply, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw storeErrorOf(e, reply, what) ?? e;
  }
}
