/**
 * The LMDB options the relay ledger (src/edge/relay/ledger.ts, helper L's
 * branch) opens its environment with: one file, overlappingSync off so an
 * awaited commit is fdatasync'ed before it resolves, no noSync / noMetaSync /
 * writemap. Until that ledger is on main the workload drives raw lmdb-js with
 * these options; keep them in step.
 */
import type { RootDatabaseOptionsWithPath } from "lmdb";

export const LEDGER_FILE = "ledger.lmdb";
export const LEDGER_OPTIONS: Omit<RootDatabaseOptionsWithPath, "path"> = {
  noSubdir: true,
  overlappingSync: false,
  noSync: false,
  noMetaSync: false,
  useWritemap: false,
  maxDbs: 8,
  encoding: "string",
  compression: false,
  // Experiments only (PL_LMDB_OPTIONS='{"overlappingSync":false}'): the test runs the ledger's own options.
  ...(JSON.parse(process.env.PL_LMDB_OPTIONS ?? "{}") as Partial<RootDatabaseOptionsWithPath>),
};
