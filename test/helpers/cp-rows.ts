import { sql } from "kysely";
import type { Store } from "../../src/orchestrator/index.js";

/** Rows in a table (for "nothing was written" checks). */
export async function countRows(store: Store, table: string): Promise<number> {
  const r = await sql<{ n: number | string }>`select count(*) as n from ${sql.table(table)}`.execute(store.db);
  return Number(r.rows[0]?.n ?? -1);
}
