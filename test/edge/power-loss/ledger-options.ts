/**
 * The LMDB options the relay ledger opens its environment with. Until helper
 * L's src/edge/relay/ledger.ts lands these are lmdb-js's defaults for a
 * single-file environment with string values (durable commits: no noSync, no
 * overlappingSync override).
 */
import type { RootDatabaseOptionsWithPath } from "lmdb";

export const LEDGER_FILE = "ledger.lmdb";
export const LEDGER_OPTIONS: Omit<RootDatabaseOptionsWithPath, "path"> = {
  encoding: "string",
  compression: false,
  // Experiments only (PL_LMDB_OPTIONS='{"overlappingSync":false}'): the test runs the ledger's own options.
  ...(JSON.parse(process.env.PL_LMDB_OPTIONS ?? "{}") as Partial<RootDatabaseOptionsWithPath>),
};
