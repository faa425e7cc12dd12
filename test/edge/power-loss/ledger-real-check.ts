/**
 * Checker child for the real ledger: reads directory paths from stdin, opens
 * `<dir>/ledger.lmdb` with openRelayLedger (recovery included, as edged does
 * after a reboot) and prints one JSON line: segments, deliveries, inbox,
 * cursor — or the error.
 */
import { createInterface } from "node:readline";
import { join } from "node:path";
import { openLedgerUnderTest } from "./relay-ledger-api.js";

for await (const dir of createInterface({ input: process.stdin })) {
  if (dir === "") continue;
  try {
    const l = await openLedgerUnderTest(join(dir, "ledger.lmdb"));
    const out = {
      dir,
      segments: l.segmentsList().map((s) => s.info.id),
      deliveries: l.deliveriesWhere().map((d) => [d.segment_id, d.peer_id, d.state]),
      inbox: l.inbox(0, 1_000_000).map((e) => [e.seq, e.segment_id]),
      cursor: l.cursor(),
    };
    await l.close();
    process.stdout.write(JSON.stringify(out) + "\n");
  } catch (e) {
    const commit: unknown = (e as { commitError?: unknown }).commitError;
    if (commit instanceof Promise) commit.catch(() => undefined);
    process.stdout.write(JSON.stringify({ dir, error: e instanceof Error ? e.message : String(e) }) + "\n");
  }
}
