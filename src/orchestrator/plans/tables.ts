import { sql } from "kysely";
import type { Migration } from "../db/migration.js";

/**
 * The rollouts area's tables (migration 0005_rollouts).
 *
 * `rollout_plans` keeps each plan's engine state as ONE JSON document
 * (`state`, read back only through the engine's `parsePlanState`), with
 * `version` for optimistic concurrency: every step reads version v and writes
 * v+1 `WHERE version = v`, so two writers can never both apply a step to the
 * same state. `phase` and `release_id` are copies of the state's, for listing
 * and for the scheduler's "which plans are live" query.
 *
 * `node_assignments` is each node's desired release when a plan decided it
 * (started, rolled back, or pinned at creation): GET /v1/releases/latest
 * answers it to that node instead of the channel's latest.
 */
export interface RolloutPlansTable {
  plan_id: string;
  release_id: string;
  phase: string;
  state: string;
  version: number;
  created_at: string;
  updated_at: string;
}

export interface NodeAssignmentsTable {
  node_id: string;
  release_id: string;
  plan_id: string;
  assigned_at: string;
}

export interface RolloutTables {
  rollout_plans: RolloutPlansTable;
  node_assignments: NodeAssignmentsTable;
}

export const rolloutMigrations: readonly Migration[] = [
  {
    id: "0005_rollouts",
    async up(db) {
      await db.schema
        .createTable("rollout_plans")
        .addColumn("plan_id", "text", (c) => c.primaryKey())
        .addColumn("release_id", "text", (c) => c.notNull())
        .addColumn("phase", "text", (c) => c.notNull())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("version", "bigint", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("rollout_plans_created").on("rollout_plans").columns(["created_at", "plan_id"]).execute();
      await db.schema.createIndex("rollout_plans_phase").on("rollout_plans").columns(["phase"]).execute();
      await db.schema
        .createTable("node_assignments")
        .addColumn("node_id", "text", (c) => c.primaryKey().references("nodes.node_id").onDelete("cascade"))
        .addColumn("release_id", "text", (c) => c.notNull())
        .addColumn("plan_id", "text", (c) => c.notNull().references("rollout_plans.plan_id").onDelete("cascade"))
        .addColumn("assigned_at", "text", (c) => c.notNull())
        .execute();
    },
  },
  {
    // PostgreSQL checks a foreign key with one query per written row: re-pinning 1,000 members to a
    // new plan ran 1,000 checks of the same plan row, most of a plan creation's time (VAL07). The
    // plan id is always written in the transaction that inserts or steps that plan, and plans are
    // never deleted, so the constraint guarded nothing the store code can produce. SQLite checks
    // foreign keys in-engine for next to nothing and cannot drop a constraint in place: kept there.
    id: "0011_assignments_plan_fk",
    async up(db, dialect) {
      if (dialect === "postgres") await sql`alter table node_assignments drop constraint if exists node_assignments_plan_id_fkey`.execute(db);
    },
  },
];
