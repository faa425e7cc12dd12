import type { IdentityTables, NodesIdentityColumns } from "../identity/tables.js";
import type { ReleaseTables } from "../releases/tables.js";

/**
 * The whole store as Kysely sees it: one interface per area, merged. The
 * nodes area (0003_nodes) widens `nodes` with its heartbeat columns and adds
 * its NodeTables / EventTables here.
 */
export interface Database extends IdentityTables, ReleaseTables {
  nodes: NodesIdentityColumns;
}
