import { CompiledQuery } from "kysely";
import type { Insertable, Kysely, Selectable } from "kysely";
import type { IngestEvent, IngestResult, StoredEvent } from "../../cpapi/index.js";
import type { Store } from "../db/connect.js";
import type { Database } from "../db/schema.js";
import { sqliteImmediateTransaction } from "../db/write-lock.js";
import { utc } from "../nodes/store.js";
import type { EventsTable } from "./tables.js";

/** The store side of the events area: ingest with dedup, and paged queries. */

/** PostgreSQL advisory lock serializing ingests ("events" in ASCII), so ingest_seq order is commit order. */
export const EVENTS_LOCK_KEY = 0x6576656e7473n;
/** How long an ingest waits for a lock before it answers STORE_BUSY (SQLite: the store's busy_timeout). */
export const DEFAULT_LOCK_TIMEOUT_MS = 5000;

export interface IngestOptions {
  /** PostgreSQL: how long the ingest statement waits for a lock when the session sets no lock_timeout. */
  lockTimeoutMs?: number;
}

/** The stored form of one event; `attributes` is already JSON text, so it is stored byte for byte. */
type EventRow = Omit<Insertable<EventsTable>, "ingest_seq">;

function rowOf(e: IngestEvent, now: string): EventRow {
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

const COLUMNS = ["event_id", "event_type", "node_id", "timestamp", "lock_fingerprint", "release_id", "attributes", "received_at"] as const;

/** `insert … values (?, …), … on conflict do nothing` for n rows; the text is cached per n, so SQLite's statement cache (db/connect.ts) reuses the prepared statement. */
const sqliteInsertText = new Map<number, string>();
function sqliteInsert(n: number): string {
  let text = sqliteInsertText.get(n);
  if (text === undefined) {
    const row = `(${COLUMNS.map(() => "?").join(", ")})`;
    text = `insert into events (${COLUMNS.join(", ")}) values ${Array.from({ length: n }, () => row).join(", ")} on conflict (node_id, event_id) do nothing`;
    if (sqliteInsertText.size < 64) sqliteInsertText.set(n, text);
  }
  return text;
}

/**
 * The insert of one batch, as a compiled query (no query-builder tree for
 * thousands of values). SQLite: a multi-row VALUES statement, prepared once
 * per batch size. PostgreSQL: the batch as ONE jsonb parameter unpacked by
 * jsonb_to_recordset (array order), so the server parses one short statement
 * instead of a new 4,000-placeholder one. Only schema-checked strings go in.
 */
function insertBatch(dialect: Store["dialect"], rows: readonly EventRow[], lockTimeoutMs: number): CompiledQuery {
  if (dialect === "postgres") {
    // ONE autocommit statement (atomic by itself, one round trip): the CTE sets the statement's
    // lock_timeout (the session's, or the fallback when it has none: never wait forever) and takes
    // the ingest advisory lock before any row can be produced, so ingest_seq order is commit order.
    return CompiledQuery.raw(
      `with ingest_lock as (select set_config('lock_timeout', case when current_setting('lock_timeout') = '0' then $2 else current_setting('lock_timeout') end, true), pg_advisory_xact_lock(${EVENTS_LOCK_KEY.toString()}))
      insert into events (${COLUMNS.join(", ")}) select ${COLUMNS.map((c) => `x.${c}`).join(", ")} from ingest_lock cross join jsonb_to_recordset($1::jsonb) as x(${COLUMNS.map((c) => `${c} text`).join(", ")}) on conflict (node_id, event_id) do nothing`,
      [JSON.stringify(rows), `${Math.max(1, Math.trunc(lockTimeoutMs))}ms`],
    );
  }
  return CompiledQuery.raw(
    sqliteInsert(rows.length),
    rows.flatMap((r) => COLUMNS.map((c) => r[c] ?? null)),
  );
}

/**
 * Stores a batch in ONE transaction: `INSERT … ON CONFLICT (node_id,
 * event_id) DO NOTHING`, so a node's event_id already stored — or repeated inside the batch —
 * is counted as deduped, never stored twice. Any failure rolls the whole
 * batch back. Both drivers report the rows actually inserted (SQLite
 * changes(), PostgreSQL's command tag), so nothing is RETURNed.
 */
export async function ingestEvents(store: Store, events: readonly IngestEvent[], now: string, opts: IngestOptions = {}): Promise<IngestResult> {
  const rows = events.map((e) => rowOf(e, now));
  const query = insertBatch(store.dialect, rows, opts.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS);
  const r = store.dialect === "postgres" ? await store.db.executeQuery(query) : await sqliteImmediateTransaction(store, (conn) => conn.executeQuery(query));
  const inserted = Number(r.numAffectedRows ?? 0n);
  return { received: events.length, inserted, deduped: events.length - inserted };
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
