import type { Migration } from "../db/migration.js";

/**
 * Identity tables (migration 0001_identity). Secrets are never stored: only
 * the SHA-256 of each token (hex). Times are RFC 3339 UTC text with
 * milliseconds (isoTime), which sorts correctly as text on both dialects.
 */
export interface TokensTable {
  id: string;
  name: string;
  role: string;
  hash: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}

export interface EnrollmentTokensTable {
  id: string;
  hash: string;
  /** Pinned node id, or null (the node chooses). */
  node_id: string | null;
  /** JSON object text of the labels the node starts with. */
  labels: string;
  created_at: string;
  expires_at: string;
  created_by: string;
  /** Set when spent (single use). */
  used_at: string | null;
  used_by: string | null;
}

/**
 * The nodes table starts minimal here (identity: who enrolled, with which
 * labels, when); 0003_nodes (the nodes area) ALTERs it to add the heartbeat
 * and activation columns.
 */
export interface NodesIdentityColumns {
  node_id: string;
  /** JSON object text. */
  labels: string;
  enrolled_at: string;
}

export interface NodeCredentialsTable {
  id: string;
  node_id: string;
  hash: string;
  created_at: string;
  revoked_at: string | null;
}

export interface IdentityTables {
  tokens: TokensTable;
  enrollment_tokens: EnrollmentTokensTable;
  node_credentials: NodeCredentialsTable;
}

export const identityMigrations: readonly Migration[] = [
  {
    id: "0001_identity",
    async up(db) {
      await db.schema
        .createTable("tokens")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("role", "text", (c) => c.notNull())
        .addColumn("hash", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("expires_at", "text")
        .addColumn("revoked_at", "text")
        .execute();
      await db.schema
        .createTable("enrollment_tokens")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("hash", "text", (c) => c.notNull())
        .addColumn("node_id", "text")
        .addColumn("labels", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("expires_at", "text", (c) => c.notNull())
        .addColumn("created_by", "text", (c) => c.notNull())
        .addColumn("used_at", "text")
        .addColumn("used_by", "text")
        .execute();
      await db.schema
        .createTable("nodes")
        .addColumn("node_id", "text", (c) => c.primaryKey())
        .addColumn("labels", "text", (c) => c.notNull())
        .addColumn("enrolled_at", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("node_credentials")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("node_id", "text", (c) => c.notNull().references("nodes.node_id").onDelete("cascade"))
        .addColumn("hash", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("revoked_at", "text")
        .execute();
      await db.schema.createIndex("node_credentials_node").on("node_credentials").column("node_id").execute();
    },
  },
];
