import { identityMigrations } from "../identity/tables.js";
import { releaseMigrations } from "../releases/tables.js";
import { nodesMigrations } from "../nodes/tables.js";
import { eventsMigrations } from "../events/tables.js";
import { rolloutMigrations } from "../plans/tables.js";
import type { Migration } from "./migration.js";

/** Every area's migrations, sorted by id (migrateStore applies in id order): 0001_identity, 0002_releases (core); 0003_nodes, 0004_events (nodes, events); 0005_rollouts (plans, assignments); 0006_events_node_key, 0007_releases_withdrawn (review fixes); 0008_releases_standby (rollback targets); 0009_node_offers (nodes: which releases each node was offered), 0010_nodes_labels_gin (PostgreSQL label selectors); 0011_assignments_plan_fk (PostgreSQL: no per-row foreign-key check of node_assignments.plan_id); 0012_events_received_at (behaviour-gate windows by arrival time). */
export const MIGRATIONS: readonly Migration[] = [...identityMigrations, ...releaseMigrations, ...nodesMigrations, ...eventsMigrations, ...rolloutMigrations].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
