import type { Kysely } from "kysely";
import type { Dialect } from "./connect.js";

/**
 * One schema step. `id` sorts in apply order ("0001_identity"); `up` runs in
 * one transaction with the other servers locked out (see {@link migrateStore}),
 * so it either fully happens or not at all. Migrations are never edited once
 * released: a change is a new migration.
 */
export interface Migration {
  id: string;
  // Kysely<any>: a migration runs against the schema as it was at its time, not the current Database type.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  up(db: Kysely<any>, dialect: Dialect): Promise<void>;
}
