/**
 * Adversarial review (issue 11, relay half): a configured peer pushing
 * segments nobody asked for. The receiver keeps every arrival and lets the
 * store evict only segments THIS node relayed and delivered, so arrivals the
 * application already consumed (cursor past them) stay forever: any peer's
 * traffic fills the store to its ceiling for good, after which the node can
 * neither receive (507 to every sender) nor enqueue its own segments.
 */
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { ledgerSink, openRelayLedger } from "../../../src/edge/index.js";
import { openSegmentStore } from "../../../src/edge/storage/index.js";
import { codeOf } from "../../helpers/caught.js";

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const from = { id: "edge-a", cert_fingerprint: "sha256:" + "cd".repeat(32) };
const seg = (i: number) => {
  const bytes = Buffer.alloc(100, i);
  return { info: { id: createHash("sha256").update(bytes).digest("hex"), size: 100, kind: "data" as const }, bytes };
};

it("attack: a peer fills the receiver's store with unsolicited segments — once the application consumed them they make room, so the store is not full for good", async () => {
  const root = await mkdtemp(join(tmpdir(), "rev2-store-"));
  dirs.push(root);
  const ledger = await openRelayLedger(join(root, "ledger.lmdb"));
  const store = await openSegmentStore({ dir: join(root, "segments"), ceilingBytes: 1000 });
  const sink = ledgerSink(ledger, store);
  try {
    for (let i = 0; i < 10; i++) await sink.accept(seg(i).info, seg(i).bytes, from);
    // The application applied every arrival (the daemon advances the cursor past data at once).
    await ledger.advanceCursor(10);
    expect(await codeOf(sink.accept(seg(10).info, seg(10).bytes, from))).toBe("NO_ERROR");
  } finally {
    await ledger.close();
  }
});
