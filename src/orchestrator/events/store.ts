import { sql } from "kysely";
import type { Insertable, Kysely, Selectable } from "kysely";
import type { IngestEvent, IngestResult, StoredEvent } from "../../cpapi/index.js";
import type { Store } from "../db/connect.js";
import type { Database } from "../db/schema.js";
import { utc } from "../nodes/store.js";
import type { EventsTable } from "./tables.js";

/** The store side of the events area: ingest with dedup, and paged queries. */

/** PostgreSQL advisory lock serializing ingests ("events" in ASCII), so ingest_seq order is commit order. */
export const EVENTS_LOCK_KEY = 0x6576656e7473n;
/** How long an ingest waits for a lock before it answers STORE_BUSY (SQLite: the store's busy_timeout). */
export const DEFAULT_LOCK_TIMEOUT_MS = 5000;
/** Rows per INSERT statement: well under both drivers' bound-parameter limits. */
const CHUNK = 500;

export interface IngestOptions {
  /** PostgreSQL lock_timeout of the ingest transaction. */
  lockTimeoutMs?: number;
}

function rowOf(e: IngestEvent, now: string): Insertable<EventsTable> {
  return {
    event_id: e.event_id,
    event_type: e.event_type,
    node_id: e.node_id,
    timestamp: utc(e.timestamp),
    lock_fingerprint: e.lock_fingerprint ?? null,
    release_id: e.release_id ?? null,
    attributes: e.attributes === undefined ? null : JSON.stringify(e.attributes),
    received_at: now,
  };
}

/**
 * Stores a batch in ONE transaction: `INSERT … ON CONFLICT (event_id) DO
 * NOTHING`, so an event_id already stored — or repeated inside the batch —
 * is counted as deduped, never stored twice. Any failure rolls the whole
 * batch back.
 */
export async function ingestEvents(store: Store, events: readonly IngestEvent[], now: string, opts: IngestOptions = {}): Promise<IngestResult> {
  const rows = events.map((e) => rowOf(e, now));
  const inserted = await writeTransaction(store, opts, async (tx) => {
    let n = 0;
    for (let i = 0; i < rows.length; i += CHUNK) {
      const done = await tx
        .insertInto("events")
        .values(rows.slice(i, i + CHUNK))
        .onConflict((oc) => oc.column("event_id").doNothing())
        .returning("ingest_seq")
        .execute();
      n += done.length;
    }
    return n;
  });
  return { received: events.length, inserted, deduped: events.length - inserted };
}

/**
 * One write transaction that fails fast and cleanly when the store is busy.
 * SQLite: BEGIN IMMEDIATE (the write lock up front, waiting busy_timeout),
 * and a rollback that tolerates SQLite having rolled back by itself already
 * (it does on SQLITE_FULL), so the caller sees the real error.
 * PostgreSQL: the session's lock_timeout, or {@link DEFAULT_LOCK_TIMEOUT_MS}
 * when it has none (never wait forever), then the ingest advisory lock.
 */
async function writeTransaction<T>(store: Store, opts: IngestOptions, fn: (tx: Kysely<Database>) => Promise<T>): Promise<T> {
  if (store.dialect === "postgres") {
    const fallback = `${Math.max(1, Math.trunc(opts.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS))}ms`;
    return store.db.transaction().execute(async (tx) => {
      await sql`select set_config('lock_timeout', case when current_setting('lock_timeout') = '0' then ${fallback} else current_setting('lock_timeout') end, true)`.execute(tx);
      await sql`select pg_advisory_xact_lock(${sql.lit(EVENTS_LOCK_KEY.toString())}::bigint)`.execute(tx);
      return fn(tx);
    });
  }
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

export interface EventQuery {
  node_id?: string;
  event_type?: string;
  /** Inclusive, UTC. */
  since?: string;
  /** Exclusive, UTC. */
  until?: string;
  /** Only rows with ingest_seq below this (the cursor). */
  before?: number;
  limit: number;
}

export function storedEventOf(row: Selectable<EventsTable>): StoredEvent {
  return {
    event_id: row.event_id,
    event_type: row.event_type,
    node_id: row.node_id,
    timestamp: row.timestamp,
    ...(row.lock_fingerprint !== null ? { lock_fingerprint: row.lock_fingerprint } : {}),
    ...(row.release_id !== null ? { release_id: row.release_id } : {}),
    ...(row.attributes !== null ? { attributes: JSON.parse(row.attributes) as Record<string, unknown> } : {}),
    ingest_seq: row.ingest_seq,
    received_at: row.received_at,
  };
}

/**
 * Newest first by ingest_seq. Paging by "ingest_seq below the last one seen"
 * never repeats or skips a row that existed when paging started: new rows get
 * higher numbers (and commit in that order), so they never shift a page.
 */
export async function queryEvents(db: Kysely<Database>, q: EventQuery): Promise<{ events: StoredEvent[]; last: number | undefined }> {
  let query = db.selectFrom("events").selectAll();
  if (q.node_id !== undefined) query = query.where("node_id", "=", q.node_id);
  if (q.event_type !== undefined) query = query.where("event_type", "=", q.event_type);
  if (q.since !== undefined) query = query.where("timestamp", ">=", q.since);
  if (q.until !== undefined) query = query.where("timestamp", "<", q.until);
  if (q.before !== undefined) query = query.where("ingest_seq", "<", q.before);
  const rows = await query.orderBy("ingest_seq", "desc").limit(q.limit + 1).execute();
  const page = rows.slice(0, q.limit);
  return { events: page.map(storedEventOf), last: rows.length > q.limit ? page.at(-1)?.ingest_seq : undefined };
}
