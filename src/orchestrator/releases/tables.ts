import type { Migration } from "../db/migration.js";

/** One published release (migration 0002_releases). `statement` is the DSSE envelope as JSON text. */
export interface ReleasesTable {
  release_id: string;
  channel: string;
  sequence: number;
  /** sha256 of the statement's payload bytes: two rows with the same (channel, sequence) and different digests would be equivocation. */
  statement_digest: string;
  image: string;
  image_digest: string;
  repository: string;
  lock_digest: string;
  lock_fingerprint: string;
  bundle_digest: string;
  statement: string;
  notes: string;
  issued_at: string;
  expires_at: string;
  published_at: string;
  published_by: string;
}

export interface ReleaseTables {
  releases: ReleasesTable;
}

export const releaseMigrations: readonly Migration[] = [
  {
    id: "0002_releases",
    async up(db) {
      await db.schema
        .createTable("releases")
        .addColumn("release_id", "text", (c) => c.primaryKey())
        .addColumn("channel", "text", (c) => c.notNull())
        .addColumn("sequence", "bigint", (c) => c.notNull())
        .addColumn("statement_digest", "text", (c) => c.notNull())
        .addColumn("image", "text", (c) => c.notNull())
        .addColumn("image_digest", "text", (c) => c.notNull())
        .addColumn("repository", "text", (c) => c.notNull())
        .addColumn("lock_digest", "text", (c) => c.notNull())
        .addColumn("lock_fingerprint", "text", (c) => c.notNull())
        .addColumn("bundle_digest", "text", (c) => c.notNull())
        .addColumn("statement", "text", (c) => c.notNull())
        .addColumn("notes", "text", (c) => c.notNull())
        .addColumn("issued_at", "text", (c) => c.notNull())
        .addColumn("expires_at", "text", (c) => c.notNull())
        .addColumn("published_at", "text", (c) => c.notNull())
        .addColumn("published_by", "text", (c) => c.notNull())
        // One statement per (channel, sequence): a second, different one is refused (409), never stored beside it.
        .addUniqueConstraint("releases_channel_sequence", ["channel", "sequence"])
        .execute();
    },
  },
];
