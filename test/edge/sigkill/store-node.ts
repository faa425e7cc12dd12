/**
 * Chaos child (scaffolding until `edged run` is on main): the part of a relay
 * node that exists today, its segment store on the real file system. Loads,
 * prints `loaded`, waits for `go` on stdin (so the parent can prewarm the next
 * child while it kills this one), opens the store, prints `ready`, then for
 * each stdin line `put <n> <size>` stores the seeded segment n and prints
 * `ack <n> <id>` only after put resolved (durable), like `edgectl relay send`
 * answering its caller.
 *
 * argv: <dir>
 */
import { createInterface } from "node:readline";
// The store alone (not the edge index, which pulls in lmdb): the test bundles this child with esbuild for a fast start.
import { openSegmentStore } from "../../../src/edge/storage/index.js";
import { segmentBytes } from "./segments.js";

const dir = process.argv[2] ?? "";
const rl = createInterface({ input: process.stdin });
const lines = rl[Symbol.asyncIterator]();
process.stdout.write("loaded\n");
for (;;) {
  const l = await lines.next();
  if (l.done === true) process.exit(0);
  if (l.value === "go") break;
}
const store = await openSegmentStore({ dir, ceilingBytes: 1 << 30 });
process.stdout.write("ready\n");
// Sequential, like one caller after another; the chaos is in when the parent kills.
for (;;) {
  const l = await lines.next();
  if (l.done === true) break;
  const [cmd, n, size] = l.value.split(" ");
  if (cmd !== "put") continue;
  const { info } = await store.put(segmentBytes(Number(n), Number(size)), "data");
  process.stdout.write(`ack ${n} ${info.id}\n`);
}
