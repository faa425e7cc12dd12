import { stat } from "node:fs/promises";
import { errnoCode } from "../../lib/index.js";
import { WalError } from "./errors.js";

/**
 * Refuses a WAL directory that does not exist, for the commands that read or
 * maintain an existing WAL (read, inspect, verify, reclaim): a mistyped path
 * must not pass as an empty, healthy WAL, nor have a new one created there.
 */
export async function requireWalDir(dir: string): Promise<void> {
  const st = await stat(dir).catch((e: unknown) => {
    if (errnoCode(e) === "ENOENT") return null;
    throw e;
  });
  if (st?.isDirectory()) return;
  throw new WalError("WAL_DIR_MISSING", `${dir} is ${st ? "not a directory" : "missing"}: there is no WAL to read here`,
    "check the path (a node's WAL is <state_root>/telemetry/wal); `autonomy wal append` or the runtime creates a new WAL", { details: { dir } });
}
