import { sql } from "kysely";
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
  /** Set by an owner's withdraw (0007): latest skips it and its (channel, sequence) no longer blocks another statement. */
  withdrawn_at: string | null;
  /**
   * 1: a standby release (0008): stored, listed and conflict-checked like any other, but never a channel's
   * `latest`; it reaches nodes only through a rollout's rollback assignments. 0 otherwise. An integer, not a
   * boolean: SQLite has none (better-sqlite3 refuses to bind one) and both dialects read it back the same.
   */
  standby: number;
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
  {
    // Withdrawal (owner only): a release squatting a (channel, sequence) — a publisher's junk-signed statement at
    // 2^53-1, say — must stop blocking that key. The key becomes a unique index over live releases only.
    id: "0007_releases_withdrawn",
    async up(db, dialect) {
      if (dialect === "postgres") {
        await sql`alter table releases add column withdrawn_at text`.execute(db);
        await sql`alter table releases drop constraint releases_channel_sequence`.execute(db);
      } else {
        // SQLite cannot drop a table constraint: rebuild the table without it (no foreign key points at releases).
        await sql`create table releases_new (release_id text primary key, channel text not null, sequence bigint not null, statement_digest text not null, image text not null, image_digest text not null, repository text not null, lock_digest text not null, lock_fingerprint text not null, bundle_digest text not null, statement text not null, notes text not null, issued_at text not null, expires_at text not null, published_at text not null, published_by text not null, withdrawn_at text)`.execute(db);
        await sql`insert into releases_new select release_id, channel, sequence, statement_digest, image, image_digest, repository, lock_digest, lock_fingerprint, bundle_digest, statement, notes, issued_at, expires_at, published_at, published_by, null from releases`.execute(db);
        await sql`drop table releases`.execute(db);
        await sql`alter table releases_new rename to releases`.execute(db);
      }
      await sql`create unique index releases_live_channel_sequence on releases (channel, sequence) where withdrawn_at is null`.execute(db);
    },
  },
  {
    // Standby releases (the rollback-release model, docs/rollouts.md): a rollback target is the previous content
    // re-signed ABOVE the plan's release, published in advance; it must not become the channel's latest. Existing
    // rows are ordinary releases (0). The same statement on both dialects: ADD COLUMN with a constant default.
    id: "0008_releases_standby",
    async up(db) {
      await sql`alter table releases add column standby integer not null default 0`.execute(db);
    },
  },
];
