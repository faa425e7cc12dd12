import BetterSqlite3 from "better-sqlite3";
import { Kysely, PostgresDialect, SqliteDialect, sql } from "kysely";
import pg from "pg";
import { messageOf, redactUrl } from "../../lib/index.js";
import { OrchestratorError } from "../errors.js";
import type { SqliteDatabase, SqliteStatement } from "kysely";
import type { Database } from "./schema.js";

/** Which SQL engine a store runs on. */
export type Dialect = "sqlite" | "postgres";

/** An open control-plane store: one Kysely instance over SQLite or a PostgreSQL pool. */
export interface Store {
  db: Kysely<Database>;
  dialect: Dialect;
  close(): Promise<void>;
}

/** Options of {@link openStore}. */
export interface OpenStoreOptions {
  /** SQLite busy_timeout in ms (how long a writer waits for another). Default 5000. */
  busyTimeoutMs?: number;
  /** PostgreSQL pool size. Default 10. */
  poolSize?: number;
}

const PG_INT8_OID = 20;

/** True when `location` names a PostgreSQL server rather than a SQLite file. */
export function isPostgresLocation(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/**
 * Opens the store at `location`: a `postgres://…` URL → PostgreSQL through a
 * pg.Pool; anything else → a SQLite file (created when missing) in WAL mode
 * with synchronous=FULL (an acknowledged write survives power loss), a busy
 * timeout and foreign keys on. Answers a first query before returning, so a
 * wrong path or an unreachable server fails here, as STORE_OPEN_FAILED.
 * Does not migrate: see {@link migrateStore}.
 */
export async function openStore(location: string, opts: OpenStoreOptions = {}): Promise<Store> {
  return isPostgresLocation(location) ? openPostgres(location, opts) : openSqlite(location, opts);
}

function openSqlite(path: string, opts: OpenStoreOptions): Promise<Store> {
  let database: BetterSqlite3.Database;
  try {
    database = new BetterSqlite3(path);
    database.pragma("journal_mode = WAL");
    database.pragma("synchronous = FULL");
    database.pragma(`busy_timeout = ${Math.max(0, Math.trunc(opts.busyTimeoutMs ?? 5000))}`);
    database.pragma("foreign_keys = ON");
  } catch (e) {
    return Promise.reject(new OrchestratorError("STORE_OPEN_FAILED", `cannot open the SQLite store ${path}: ${messageOf(e)}`, { cause: e }));
  }
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(database) }) });
  return Promise.resolve({ db, dialect: "sqlite", close: () => db.destroy() });
}

async function openPostgres(url: string, opts: OpenStoreOptions): Promise<Store> {
  // int8 (bigint, count(*)) as a JS number: every integer the store keeps is ≤ 2^53−1
  // (sequences are bounded by the statement schema), and strings would leak into the wire shapes.
  const types = { getTypeParser: (oid: number, format?: "text" | "binary"): ((v: string) => unknown) => (oid === PG_INT8_OID ? (v: string) => Number(v) : (pg.types.getTypeParser(oid, format ?? "text") as (v: string) => unknown)) };
  const pool = new pg.Pool({ connectionString: url, max: opts.poolSize ?? 10, types });
  // An idle client's error (the server restarted) must not crash the process; the next query reconnects.
  pool.on("error", () => undefined);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await sql`select 1`.execute(db);
  } catch (e) {
    await db.destroy().catch(() => undefined);
    throw new OrchestratorError("STORE_OPEN_FAILED", `cannot reach the PostgreSQL store ${redactUrl(url)}: ${messageOf(e)}`, { cause: e });
  }
  return { db, dialect: "postgres", close: () => db.destroy() };
}

/** Prepared statements kept per SQLite store (most recently used). */
const STATEMENT_CACHE_SIZE = 64;

/**
 * Kysely's SQLite driver prepares every query anew; a statement of a
 * 500-event batch (4,000 placeholders) took longer to prepare than to run
 * (bench/ingest). This keeps the most recently used statements by their SQL
 * text. Safe because Kysely runs one query at a time on the one connection
 * and runs each statement to completion (all/run) before the next.
 */
function withStatementCache(database: BetterSqlite3.Database, max = STATEMENT_CACHE_SIZE): SqliteDatabase {
  const cache = new Map<string, SqliteStatement>();
  return {
    close: () => database.close(),
    prepare(text: string): SqliteStatement {
      const hit = cache.get(text);
      if (hit) {
        cache.delete(text);
        cache.set(text, hit);
        return hit;
      }
      const stmt = database.prepare(text);
      cache.set(text, stmt);
      if (cache.size > max) cache.delete(cache.keys().next().value as string);
      return stmt;
    },
  };
}
