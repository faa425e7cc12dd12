/**
 * Child program run under the plshim LD_PRELOAD: opens an LMDB environment
 * with the relay ledger's options, makes its directory entry durable, then
 * commits the steps of ledgerSteps(seed, count) one awaited transaction at a
 * time. After each commit resolved (durable) and BEFORE the next starts it
 * acknowledges: `ack <n>` on stdout, and the same line appended (plain write,
 * no fsync) to `<dir>/.acks`, which the shim logs, so the replayer knows
 * exactly which acknowledgements precede any cut point.
 *
 * argv: <dir> <seed> <count>
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { open } from "lmdb";
import { ledgerSteps } from "./ledger-model.js";
import { LEDGER_FILE, LEDGER_OPTIONS } from "./ledger-options.js";

const [dir = "", seedArg = "1", countArg = "40"] = process.argv.slice(2);
const steps = ledgerSteps(Number(seedArg), Number(countArg));
const acks = openSync(join(dir, ".acks"), "w");
const ack = (line: string): void => {
  writeSync(acks, line + "\n");
  process.stdout.write(line + "\n");
};

// As the ledger creates its environment: under a temporary name, committed once (which fdatasyncs the meta
// pages LMDB laid out with a plain pwrite), closed, renamed into place, directory fsynced. Created in place,
// a cut before the first commit leaves zero-filled or torn meta pages that lmdb-js 3.5.6 SIGSEGVs on.
const path = join(dir, LEDGER_FILE);
const temp = path + ".creating";
const init = open({ path: temp, ...LEDGER_OPTIONS });
await init.put("created", "1");
await init.close();
renameSync(temp, path);
rmSync(temp + "-lock", { force: true });
// LMDB never fsyncs the directory: without this, the new name is not durable (POSIX).
const d = openSync(dir, "r");
fsyncSync(d);
closeSync(d);
const db = open({ path, ...LEDGER_OPTIONS });
ack("open");
for (let i = 0; i < steps.length; i++) {
  const s = steps[i];
  if (!s) break;
  await db.transaction(() => {
    for (const [k, v] of s.puts) void db.put(k, v);
    for (const k of s.dels) void db.remove(k);
  });
  // With lmdb-js's overlappingSync (its default on Linux) a commit resolves when visible, not when durable.
  if (process.env.PL_ACK_ON_COMMIT !== "1") await db.flushed;
  ack(`ack ${i + 1}`);
}
await db.close();
ack("closed");
