import { sql } from "kysely";
import type { Generated } from "kysely";
import type { Migration } from "../db/migration.js";

/**
 * Ingested events (migration 0004_events, re-keyed by 0006_events_node_key).
 * `(node_id, event_id)` is unique: a resent event is ignored, so the WAL
 * exporter can resend freely, and one node's ids never collide with (or
 * pre-claim) another node's. `ingest_seq` is
 * the server's insertion order (never reused: AUTOINCREMENT / bigserial, and
 * ingests are serialized so it is also commit order); query cursors page by
 * it. Times are RFC 3339 UTC text with milliseconds.
 */
export interface EventsTable {
  ingest_seq: Generated<number>;
  event_id: string;
  event_type: string;
  node_id: string;
  /** The node's time of the event, normalized to UTC. */
  timestamp: string;
  lock_fingerprint: string | null;
  release_id: string | null;
  /** JSON object text, or null. */
  attributes: string | null;
  received_at: string;
}

export interface EventTables {
  events: EventsTable;
}

export const eventsMigrations: readonly Migration[] = [
  {
    id: "0004_events",
    async up(db, dialect) {
      await db.schema
        .createTable("events")
        .addColumn("ingest_seq", dialect === "postgres" ? "bigserial" : "integer", (c) => (dialect === "postgres" ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn("event_id", "text", (c) => c.notNull().unique())
        .addColumn("event_type", "text", (c) => c.notNull())
        .addColumn("node_id", "text", (c) => c.notNull())
        .addColumn("timestamp", "text", (c) => c.notNull())
        .addColumn("lock_fingerprint", "text")
        .addColumn("release_id", "text")
        .addColumn("attributes", "text")
        .addColumn("received_at", "text", (c) => c.notNull())
        .execute();
      // The query filters (node, type, time) each with the paging order.
      await db.schema.createIndex("events_node").on("events").columns(["node_id", "ingest_seq"]).execute();
      await db.schema.createIndex("events_type").on("events").columns(["event_type", "ingest_seq"]).execute();
      await db.schema.createIndex("events_time").on("events").columns(["timestamp"]).execute();
    },
  },
  {
    // 0004 made event_id unique fleet-wide, so one node could pre-claim another's predictable WAL ids
    // (<node_id>:<gen>:<seq>) and have its real events dropped as deduped. Released migrations are never
    // edited: this one moves the key to (node_id, event_id), keeping every stored row.
    id: "0006_events_node_key",
    async up(db, dialect) {
      if (dialect === "postgres") {
        await sql`alter table events drop constraint if exists events_event_id_key`.execute(db);
        await sql`alter table events add constraint events_node_event_key unique (node_id, event_id)`.execute(db);
        return;
      }
      // SQLite cannot drop a column's inline UNIQUE: rebuild the table (same columns, same ingest_seq values).
      await sql`create table events_new (ingest_seq integer primary key autoincrement, event_id text not null, event_type text not null, node_id text not null, timestamp text not null, lock_fingerprint text, release_id text, attributes text, received_at text not null, constraint events_node_event_key unique (node_id, event_id))`.execute(db);
      await sql`insert into events_new select ingest_seq, event_id, event_type, node_id, timestamp, lock_fingerprint, release_id, attributes, received_at from events`.execute(db);
      await sql`drop table events`.execute(db);
      await sql`alter table events_new rename to events`.execute(db);
      await db.schema.createIndex("events_node").on("events").columns(["node_id", "ingest_seq"]).execute();
      await db.schema.createIndex("events_type").on("events").columns(["event_type", "ingest_seq"]).execute();
      await db.schema.createIndex("events_time").on("events").columns(["timestamp"]).execute();
    },
  },
  {
    // Behaviour-gate windows select events by when the control plane received them (the server's clock), not
    // by the node's own timestamp: a node with a skewed clock could otherwise date its denies out of the window.
    id: "0012_events_received_at",
    async up(db) {
      await db.schema.createIndex("events_received").on("events").columns(["received_at"]).execute();
    },
  },
];
