import { sql } from "kysely";
import type { Generated } from "kysely";
import type { Migration } from "../db/migration.js";

/**
 * The nodes area's tables (migration 0003_nodes). 0001_identity created
 * `nodes` with who enrolled and when; this adds what the node reports about
 * itself (heartbeat) and its latest ack, and `node_acks`, which keeps EVERY
 * ack so the control plane can show each node's path through a release.
 * Times are RFC 3339 UTC text with milliseconds (they sort as text).
 */
export interface NodesTable {
  node_id: string;
  /** JSON object text. */
  labels: string;
  enrolled_at: string;
  release_id: string | null;
  activation_sequence: number | null;
  lock_fingerprint: string | null;
  boot_epoch: number | null;
  wal_generation: string | null;
  runtime_version: string | null;
  /** When the last heartbeat arrived (server time). */
  last_seen: string | null;
  /** The latest ack by the node's own `at` (a late retry of an older one does not replace it). */
  last_ack_release_id: string | null;
  last_ack_phase: string | null;
  last_ack_detail: string | null;
  last_ack_at: string | null;
}

export interface NodeAcksTable {
  /** Arrival order (server-assigned). */
  ack_seq: Generated<number>;
  node_id: string;
  release_id: string;
  phase: string;
  detail: string;
  lock_fingerprint: string | null;
  /** The node's time of the phase. */
  at: string;
  received_at: string;
}

/**
 * Which releases the control plane offered each node (migration 0009_node_offers):
 * one row per (node, release) the first time GET /v1/releases/latest answered
 * that release to the node's credential (200, or 304 naming it). An ack must name
 * one of them, or the node's rollout assignment (nodes/offers.ts).
 */
export interface NodeOffersTable {
  node_id: string;
  release_id: string;
  /** Server time of the first offer. */
  offered_at: string;
}

export interface NodeTables {
  nodes: NodesTable;
  node_acks: NodeAcksTable;
  node_offers: NodeOffersTable;
}

const HEARTBEAT_COLUMNS = [
  ["release_id", "text"],
  ["activation_sequence", "bigint"],
  ["lock_fingerprint", "text"],
  ["boot_epoch", "bigint"],
  ["wal_generation", "text"],
  ["runtime_version", "text"],
  ["last_seen", "text"],
  ["last_ack_release_id", "text"],
  ["last_ack_phase", "text"],
  ["last_ack_detail", "text"],
  ["last_ack_at", "text"],
] as const;

export const nodesMigrations: readonly Migration[] = [
  {
    id: "0003_nodes",
    async up(db, dialect) {
      // One column per ALTER: SQLite adds one column per statement.
      for (const [name, type] of HEARTBEAT_COLUMNS) await db.schema.alterTable("nodes").addColumn(name, type).execute();
      await db.schema
        .createTable("node_acks")
        .addColumn("ack_seq", dialect === "postgres" ? "bigserial" : "integer", (c) => (dialect === "postgres" ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn("node_id", "text", (c) => c.notNull().references("nodes.node_id").onDelete("cascade"))
        .addColumn("release_id", "text", (c) => c.notNull())
        .addColumn("phase", "text", (c) => c.notNull())
        .addColumn("detail", "text", (c) => c.notNull())
        .addColumn("lock_fingerprint", "text")
        .addColumn("at", "text", (c) => c.notNull())
        .addColumn("received_at", "text", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("node_acks_node").on("node_acks").columns(["node_id", "ack_seq"]).execute();
      await db.schema.createIndex("node_acks_release").on("node_acks").columns(["release_id", "node_id"]).execute();
    },
  },
  {
    id: "0009_node_offers",
    async up(db) {
      await db.schema
        .createTable("node_offers")
        .addColumn("node_id", "text", (c) => c.notNull().references("nodes.node_id").onDelete("cascade"))
        .addColumn("release_id", "text", (c) => c.notNull())
        .addColumn("offered_at", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("node_offers_pk", ["node_id", "release_id"])
        .execute();
    },
  },
  {
    // PostgreSQL label selectors (GET /v1/nodes?label=k=v) as `labels::jsonb @> {"k":"v"}` use this
    // index: a rare label over 100,000 nodes took 130-150 ms as a scan, 1.4 ms with it (no
    // difference at 1,000). SQLite has no such index; its json_extract scan stays.
    id: "0010_nodes_labels_gin",
    async up(db, dialect) {
      if (dialect === "postgres") await sql`create index nodes_labels_gin on nodes using gin ((labels::jsonb))`.execute(db);
    },
  },
];
