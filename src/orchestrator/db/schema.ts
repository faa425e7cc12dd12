import type { IdentityTables } from "../identity/tables.js";
import type { ReleaseTables } from "../releases/tables.js";
import type { NodeTables } from "../nodes/tables.js";
import type { EventTables } from "../events/tables.js";
import type { RolloutTables } from "../plans/tables.js";

/**
 * The whole store as Kysely sees it: one interface per area, merged. The
 * nodes area (0003_nodes) widens `nodes` with its heartbeat columns and adds
 * its NodeTables / EventTables here.
 */
export interface Database extends IdentityTables, ReleaseTables, NodeTables, EventTables, RolloutTables {}
