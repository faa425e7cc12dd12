import type { Generated } from "kysely";
import type { Migration } from "../db/migration.js";

/**
 * Ingested events (migration 0004_events). `event_id` is unique: a resent
 * event is ignored, so the WAL exporter can resend freely. `ingest_seq` is
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
];
