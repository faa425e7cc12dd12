/**
 * Orphaned bytes (issue 11, store accounting). Both writers of the segment
 * store put the bytes first and record them second — the receiver's sink
 * (store.put → inbox entry) and enqueue (store.put → schedule) — so a SIGKILL
 * between the two leaves a segment file no ledger record names. Nobody was
 * told about it (no ack, no answer), and nothing would ever evict it: it
 * counted against the ceiling forever. edged's start (openRelayParts) now
 * removes such files with an `orphan` eviction record, before the receiver or
 * the executor can write.
 *
 * The crash is simulated exactly where it happens: the store's durable put
 * resolved, the ledger's record was never written, the process went away
 * (store and ledger closed without another write).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { createLogger } from "../../src/observability/index.js";
import { STORE_BLOCK_BYTES, ledgerSink, loadEdgeConfig, openRelayLedger, openRelayParts, openSegmentStore, segmentIdOf } from "../../src/edge/index.js";
import { stateRootPaths } from "../../src/node/index.js";
import { makeCerts } from "../helpers/edge-boot.js";

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const from = { id: "edge-b", cert_fingerprint: "sha256:" + "cd".repeat(32) };
const log = createLogger({ name: "test.store-orphans", level: "silent" });

it("attack: SIGKILL between store.put and the ledger record — the orphaned bytes are removed at the next start with an `orphan` record, not counted against the ceiling forever", async () => {
  const dir = await mkdtemp(join(tmpdir(), "store-orphans-"));
  dirs.push(dir);
  makeCerts(dir);
  await writeFile(join(dir, "edge.toml"), [
    "config_version = 1", "[node]", 'id = "edge-a"', 'state_root = "state"',
    "[transport]", 'cert_file = "node.crt"', 'key_file = "node.key"', 'ca_file = "ca.crt"',
    "[storage]", `ceiling_bytes = ${8 * STORE_BLOCK_BYTES}`,
    "[[peers]]", 'id = "edge-b"', 'address = "127.0.0.1:7444"', "",
  ].join("\n"));
  const config = await loadEdgeConfig(join(dir, "edge.toml"));
  const paths = stateRootPaths(config.node.stateRoot);

  // Before the crash: one arrival recorded (kept), one enqueued segment scheduled (kept).
  const ledger = await openRelayLedger(paths.relayLedger);
  const store = await openSegmentStore({ dir: paths.edgeSegments, ceilingBytes: config.storage.ceilingBytes });
  const arrived = Buffer.from("an arrival, stored and recorded");
  await ledgerSink(ledger, store).accept({ id: segmentIdOf(arrived), size: arrived.byteLength, kind: "data" }, arrived, from);
  const sent = Buffer.from("our own segment, stored and scheduled");
  const put = await store.put(sent, "data");
  await ledger.schedule(put.info, ["edge-b"], "one_peer");
  // The crash: the receiver's put and an enqueue's put both resolved; neither record was written.
  const orphanIn = Buffer.from("a push whose inbox record never came");
  const orphanOut = Buffer.from("an enqueue whose schedule never came");
  await store.put(orphanIn, "data");
  await store.put(orphanOut, "release");
  await ledger.close();
  expect(store.usage().segments).toBe(4);

  const parts = await openRelayParts(config, { clock: { now: () => Date.now() }, log });
  try {
    const evicted = parts.store.evictions();
    expect(evicted.map((e) => [e.id, e.reason, e.bytes]).sort()).toEqual([
      [segmentIdOf(orphanIn), "orphan", orphanIn.byteLength],
      [segmentIdOf(orphanOut), "orphan", orphanOut.byteLength],
    ].sort());
    expect(parts.store.list().map((s) => s.id).sort()).toEqual([segmentIdOf(arrived), segmentIdOf(sent)].sort());
    // Exact accounting: what is left is what is counted.
    expect(parts.store.usage()).toMatchObject({ used_bytes: arrived.byteLength + sent.byteLength, disk_bytes: 2 * STORE_BLOCK_BYTES, segments: 2 });
  } finally {
    await parts.close();
  }
  // And the records are durable: a later start finds nothing more to remove.
  const again = await openRelayParts(config, { clock: { now: () => Date.now() }, log });
  try {
    expect(again.store.evictions().map((e) => e.reason)).toEqual(["orphan", "orphan"]);
    expect(again.store.usage().segments).toBe(2);
  } finally {
    await again.close();
  }
});
