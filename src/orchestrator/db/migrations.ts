import { identityMigrations } from "../identity/tables.js";
import { releaseMigrations } from "../releases/tables.js";
import { nodesMigrations } from "../nodes/tables.js";
import { eventsMigrations } from "../events/tables.js";
import { rolloutMigrations } from "../plans/tables.js";
import type { Migration } from "./migration.js";

/** Every area's migrations, in id order: 0001_identity, 0002_releases (core); 0003_nodes, 0004_events (nodes, events); 0005_rollouts (plans, assignments). */
export const MIGRATIONS: readonly Migration[] = [...identityMigrations, ...releaseMigrations, ...nodesMigrations, ...eventsMigrations, ...rolloutMigrations];
