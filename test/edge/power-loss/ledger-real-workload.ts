/**
 * Child program run under the plshim LD_PRELOAD: drives the real relay ledger
 * (src/edge/relay/ledger.ts) through a seeded mix of sender and receiver
 * operations — schedule a segment to two peers, begin and ack a delivery,
 * receive a segment into the inbox (sometimes one already received: a push
 * retried after a lost ack), advance the application cursor — one awaited
 * operation at a time, and acknowledges each after it resolved: a line on
 * stdout and the same line appended to `<dir>/.acks` (logged by the shim).
 *
 * argv: <dir> <seed> <count>
 */
import { createHash } from "node:crypto";
import { openSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { SegmentInfo } from "../../../src/edge/index.js";
import { openLedgerUnderTest } from "./relay-ledger-api.js";
import { seededRng } from "../../../src/lib/index.js";

const [dir = "", seedArg = "1", countArg = "40"] = process.argv.slice(2);
const rng = seededRng(Number(seedArg));
const acks = openSync(join(dir, ".acks"), "w");
const ack = (line: string): void => {
  writeSync(acks, line + "\n");
  process.stdout.write(line + "\n");
};
const PEERS = ["peer-a", "peer-b"];
const info = (n: number): SegmentInfo => ({ id: createHash("sha256").update(`segment-${n}`).digest("hex"), size: 100 + n, kind: "data" });
const from = { id: "peer-z", cert_fingerprint: "sha256:" + "0".repeat(64) };

const ledger = await openLedgerUnderTest(join(dir, "ledger.lmdb"));
ack("open");
const scheduled: number[] = [];
const received: number[] = [];
let inboxMax = 0;
let cursor = 0;
for (let i = 0; i < Number(countArg); i++) {
  const r = rng();
  const n = scheduled[Math.floor(rng() * scheduled.length)];
  const p = PEERS[Math.floor(rng() * PEERS.length)] ?? "peer-a";
  if (n === undefined || r < 0.3) {
    await ledger.schedule(info(i), PEERS, "all_peers");
    scheduled.push(i);
    ack(`schedule ${info(i).id}`);
  } else if (r < 0.55) {
    const d = ledger.delivery(info(n).id, p);
    if (d?.state === "scheduled" || d?.state === "failed") {
      await ledger.begin(info(n).id, p);
      ack(`begin ${info(n).id} ${p}`);
      await ledger.ack(info(n).id, p, false);
      ack(`acked ${info(n).id} ${p}`);
    }
  } else if (r < 0.85) {
    // Receiver side: a new segment, or (a retried push after a lost ack) one already in the inbox.
    const k = received.length > 0 && rng() < 0.3 ? (received[Math.floor(rng() * received.length)] ?? 0) : 10_000 + i;
    const res = await ledger.receive(info(k), from);
    if (!res.duplicate) received.push(k);
    inboxMax = Math.max(inboxMax, res.inbox_seq);
    ack(`recv ${info(k).id} ${res.inbox_seq} ${res.duplicate ? "dup" : "new"}`);
  } else if (inboxMax > cursor) {
    cursor = cursor + 1 + Math.floor(rng() * (inboxMax - cursor));
    await ledger.advanceCursor(cursor);
    ack(`cursor ${cursor}`);
  }
}
await ledger.close();
ack("closed");
