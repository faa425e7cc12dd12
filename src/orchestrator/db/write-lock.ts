import { sql } from "kysely";
import type { Kysely } from "kysely";
import type { Store } from "./connect.js";
import type { Database } from "./schema.js";

/** The advisory lock key of schema changes and bootstrap (any stable 64-bit number: "autonomy" in ASCII). */
export const SCHEMA_LOCK_KEY = 0x6175746f6e6f6d79n;

/**
 * Runs `fn` in one transaction that excludes every other writer doing the
 * same, across processes: on PostgreSQL it holds `pg_advisory_xact_lock(key)`
 * (released at commit/rollback); on SQLite it is `BEGIN IMMEDIATE` (the file's
 * write lock from the first statement, so two servers cannot both read
 * "nothing there" and both write). For migrations and the bootstrap token.
 */
export async function withExclusiveTransaction<T>(store: Store, fn: (tx: Kysely<Database>) => Promise<T>, key: bigint = SCHEMA_LOCK_KEY): Promise<T> {
  if (store.dialect === "postgres") {
    return store.db.transaction().execute(async (tx) => {
      await sql`select pg_advisory_xact_lock(${sql.lit(key.toString())}::bigint)`.execute(tx);
      return fn(tx);
    });
  }
  return sqliteImmediateTransaction(store, fn);
}

/**
 * One write transaction that takes the write lock up front: on SQLite `BEGIN
 * IMMEDIATE` (a deferred transaction that reads then writes can fail with
 * SQLITE_BUSY_SNAPSHOT when another connection wrote in between); on
 * PostgreSQL an ordinary transaction (row locks and conditional UPDATEs decide).
 */
export async function withWriteTransaction<T>(store: Store, fn: (tx: Kysely<Database>) => Promise<T>): Promise<T> {
  if (store.dialect === "postgres") return store.db.transaction().execute(fn);
  return sqliteImmediateTransaction(store, fn);
}

/**
 * SQLite: one connection, `BEGIN IMMEDIATE` (the file's write lock up front,
 * waiting busy_timeout; Kysely's own transactions begin DEFERRED), commit, or
 * a rollback that tolerates SQLite having rolled back by itself already (it
 * does on SQLITE_FULL), so the caller sees the real error.
 */
export async function sqliteImmediateTransaction<T>(store: Store, fn: (conn: Kysely<Database>) => Promise<T>): Promise<T> {
  return store.db.connection().execute(async (conn) => {
    await sql`begin immediate`.execute(conn);
    try {
      const out = await fn(conn);
      await sql`commit`.execute(conn);
      return out;
    } catch (e) {
      await sql`rollback`.execute(conn).catch(() => undefined);
      throw e;
    }
  });
}
