/**
 * Checker child: reads directory paths from stdin, one per line; opens the
 * LMDB environment in each with the ledger's options, read-write as the
 * ledger would after a reboot, and prints one JSON line per directory:
 * {"dir", "entries": [[k, v], …]} or {"dir", "error"}. A separate process so a
 * database that crashes LMDB itself fails the test instead of the runner.
 */
import { createInterface } from "node:readline";
import { join } from "node:path";
import { open } from "lmdb";
import { LEDGER_FILE, LEDGER_OPTIONS } from "./ledger-options.js";

const rl = createInterface({ input: process.stdin });
for await (const dir of rl) {
  if (dir === "") continue;
  try {
    const db = open({ path: join(dir, LEDGER_FILE), ...LEDGER_OPTIONS });
    const entries: [string, string][] = [];
    for (const { key, value } of db.getRange()) entries.push([String(key), String(value)]);
    // The ledger writes right after opening: a recovered environment must also accept a commit.
    await db.put("meta/reopened", "1");
    await db.close();
    process.stdout.write(JSON.stringify({ dir, entries }) + "\n");
  } catch (e) {
    // lmdb-js attaches the native failure as a second promise; it is reported here, not as an unhandled rejection.
    const commit: unknown = (e as { commitError?: unknown }).commitError;
    if (commit instanceof Promise) commit.catch(() => undefined);
    process.stdout.write(JSON.stringify({ dir, error: e instanceof Error ? e.message : String(e) }) + "\n");
  }
}
