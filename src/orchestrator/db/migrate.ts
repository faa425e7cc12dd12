import { sql } from "kysely";
import type { Kysely, Transaction } from "kysely";
import { isoTime, messageOf, systemClock } from "../../lib/index.js";
import type { Clock } from "../../lib/index.js";
import { OrchestratorError } from "../errors.js";
import type { Store } from "./connect.js";
import type { Migration } from "./migration.js";
import { withExclusiveTransaction } from "./write-lock.js";

/** What {@link migrateStore} did. */
export interface MigrationReport {
  /** Ids applied by this call, in order. */
  applied: string[];
  /** Every id now recorded in schema_migrations. */
  current: string[];
}

/**
 * Brings the store's schema up to `migrations` (sorted by id). Each pending
 * migration runs in its own transaction together with its schema_migrations
 * row, under the exclusive lock (withExclusiveTransaction), re-reading what is
 * applied first, so two servers starting at once apply each step once.
 * A database that has a migration this build does not know was written by a
 * newer build: STORE_SCHEMA_TOO_NEW, nothing is touched.
 */
export async function migrateStore(store: Store, migrations: readonly Migration[], clock: Clock = systemClock): Promise<MigrationReport> {
  const ordered = [...migrations].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const known = new Set(ordered.map((m) => m.id));
  if (known.size !== ordered.length) throw new OrchestratorError("STORE_MIGRATION_FAILED", "two migrations share an id (a build defect)");
  const applied: string[] = [];
  for (;;) {
    const step = await withExclusiveTransaction(store, async (typed) => {
      const tx = typed as AnyDb;
      await ensureTable(tx);
      const done = await appliedIds(tx);
      const unknown = done.filter((id) => !known.has(id));
      if (unknown.length > 0) {
        throw new OrchestratorError("STORE_SCHEMA_TOO_NEW", `the database has migration ${unknown.sort().at(-1)} that this build does not know (it knows up to ${ordered.at(-1)?.id ?? "none"})`);
      }
      const next = ordered.find((m) => !done.includes(m.id));
      if (next === undefined) return { done, ran: undefined };
      try {
        await next.up(tx, store.dialect);
      } catch (e) {
        throw new OrchestratorError("STORE_MIGRATION_FAILED", `migration ${next.id} failed: ${messageOf(e)}`, { cause: e });
      }
      await tx.insertInto("schema_migrations").values({ id: next.id, applied_at: isoTime(clock) }).execute();
      return { done: [...done, next.id], ran: next.id };
    });
    if (step.ran === undefined) return { applied, current: step.done };
    applied.push(step.ran);
  }
}

// The table lives outside Database's typing on purpose: only this file touches it.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any> | Transaction<any>;

async function ensureTable(db: AnyDb): Promise<void> {
  await db.schema.createTable("schema_migrations").ifNotExists().addColumn("id", "text", (c) => c.primaryKey()).addColumn("applied_at", "text", (c) => c.notNull()).execute();
}

async function appliedIds(db: AnyDb): Promise<string[]> {
  const rows = await sql<{ id: string }>`select id from schema_migrations order by id`.execute(db);
  return rows.rows.map((r) => r.id);
}
