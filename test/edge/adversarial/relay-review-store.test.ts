/**
 * Adversarial review (issue 11, relay half): a configured peer pushing
 * segments nobody asked for. The receiver kept every arrival and let the
 * store evict only segments THIS node relayed and delivered, so arrivals the
 * application already consumed (cursor past them) stayed forever: any peer's
 * traffic filled the store to its ceiling for good, after which the node could
 * neither receive (507 to every sender) nor enqueue its own segments.
 *
 * Fixed (RelayLedger.releasable): an arrival at or below the durable
 * application cursor that no outbound delivery still needs is an LRU
 * eviction candidate, recorded as `lru_consumed`. An arrival the application
 * has not consumed yet is never evicted.
 *
 * The segments are one block (4096 bytes) each, so the store is full at ten
 * under both the old byte count and the disk-cost count (relay-review-tiny).
 */
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { EDGE_DEFAULTS, RelayExecutor, createBandwidthLimiter, ledgerSink, openRelayLedger, peerShareOf } from "../../../src/edge/index.js";
import type { RelayLedger } from "../../../src/edge/index.js";
import { STORE_BLOCK_BYTES, openSegmentStore } from "../../../src/edge/storage/index.js";
import type { SegmentStore } from "../../../src/edge/types.js";
import { codeOf } from "../../helpers/caught.js";
import { PeerTransportDouble } from "../../helpers/peer-transport-double.js";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const from = { id: "edge-a", cert_fingerprint: "sha256:" + "cd".repeat(32) };
const seg = (i: number) => {
  const bytes = Buffer.alloc(STORE_BLOCK_BYTES, i);
  return { info: { id: createHash("sha256").update(bytes).digest("hex"), size: bytes.byteLength, kind: "data" as const }, bytes };
};

async function receiver(): Promise<{ ledger: RelayLedger; store: SegmentStore; sink: ReturnType<typeof ledgerSink> }> {
  const root = await mkdtemp(join(tmpdir(), "rev2-store-"));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  const ledger = await openRelayLedger(join(root, "ledger.lmdb"));
  cleanups.push(() => ledger.close());
  const store = await openSegmentStore({ dir: join(root, "segments"), ceilingBytes: 10 * STORE_BLOCK_BYTES });
  return { ledger, store, sink: ledgerSink(ledger, store) };
}

it("attack: a peer fills the receiver's store with unsolicited segments — once the application consumed them they make room, so the store is not full for good", async () => {
  const { ledger, store, sink } = await receiver();
  for (let i = 0; i < 10; i++) await sink.accept(seg(i).info, seg(i).bytes, from);
  // The application applied every arrival (the daemon advances the cursor past data at once).
  await ledger.advanceCursor(10);
  expect(await codeOf(sink.accept(seg(10).info, seg(10).bytes, from))).toBe("NO_ERROR");
  // The least recently used consumed arrival went, with its own reason in the eviction log.
  expect(store.evictions().map((e) => [e.id, e.reason])).toEqual([[seg(0).info.id, "lru_consumed"]]);
  // A re-push of the evicted one is still a duplicate: never handed to the application twice.
  expect(await sink.accept(seg(0).info, seg(0).bytes, from)).toEqual({ duplicate: true, inbox_seq: 1 });
});

it("attack: a peer fills the receiver's store — arrivals the application has NOT consumed are never evicted (507 to the sender instead)", async () => {
  const { ledger, store, sink } = await receiver();
  for (let i = 0; i < 10; i++) await sink.accept(seg(i).info, seg(i).bytes, from);
  await ledger.advanceCursor(3); // 1..3 consumed, 4..10 still owed to the application
  for (let i = 10; i < 13; i++) expect(await codeOf(sink.accept(seg(i).info, seg(i).bytes, from))).toBe("NO_ERROR");
  expect(await codeOf(sink.accept(seg(13).info, seg(13).bytes, from))).toBe("STORAGE_CEILING_EXCEEDED/1");
  expect(store.evictions().map((e) => e.id)).toEqual([0, 1, 2].map((i) => seg(i).info.id));
  for (let i = 3; i < 13; i++) expect(store.has(seg(i).info.id), `arrival ${i}`).toBe(true);
});

it("attack: a peer fills the receiver's store — the node's own enqueue still gets room from the consumed arrivals", async () => {
  const { ledger, store, sink } = await receiver();
  for (let i = 0; i < 10; i++) await sink.accept(seg(i).info, seg(i).bytes, from);
  await ledger.advanceCursor(10);
  const ex = new RelayExecutor({
    ledger, store, transport: new PeerTransportDouble({ b: "ack" }), peers: [{ id: "b", address: "127.0.0.1:7000" }],
    bandwidth: createBandwidthLimiter({ bytes_per_second: 0, daily_quota_bytes: 0, quota_reset_utc: "00:00" }),
    config: { ...EDGE_DEFAULTS.relay, scheduler: EDGE_DEFAULTS.scheduler, deadletterRetentionMs: EDGE_DEFAULTS.storage.deadletterRetentionMs },
  });
  const own = Buffer.alloc(STORE_BLOCK_BYTES, 0xee);
  expect(await codeOf(ex.enqueue(own, "data"))).toBe("NO_ERROR");
  expect(store.evictions().map((e) => e.reason)).toEqual(["lru_consumed"]);
  // The node's own segment is not delivered yet: the next arrival may evict a consumed one, never it.
  expect(await codeOf(sink.accept(seg(20).info, seg(20).bytes, from))).toBe("NO_ERROR");
  expect(store.has(createHash("sha256").update(own).digest("hex"))).toBe(true);
});

it("attack: one peer floods arrivals the application has not consumed yet — it is refused at its share of the store; another peer and this node's own segments keep their room", async () => {
  const root = await mkdtemp(join(tmpdir(), "rev2-share-"));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  const open = () => openRelayLedger(join(root, "ledger.lmdb"));
  let ledger = await open();
  const store = await openSegmentStore({ dir: join(root, "segments"), ceilingBytes: 10 * STORE_BLOCK_BYTES });
  const share = peerShareOf(10 * STORE_BLOCK_BYTES, 2, STORE_BLOCK_BYTES); // two peers and this node: a third each
  expect(share).toBe(Math.floor((10 * STORE_BLOCK_BYTES) / 3));
  let sink = ledgerSink(ledger, store, { peerShareBytes: share });
  const mallory = { id: "edge-m", cert_fingerprint: "sha256:" + "ee".repeat(32) };
  // Mallory's flood (nothing consumed: say releases that take long to activate), five pushes at once: three blocks
  // fit its share, the others are refused (507) — concurrent pushes cannot slip past the share together.
  const burst = await Promise.all([0, 1, 2, 4, 5].map((i) => codeOf(sink.accept(seg(i).info, seg(i).bytes, mallory))));
  expect(burst).toEqual(["NO_ERROR", "NO_ERROR", "NO_ERROR", "STORAGE_CEILING_EXCEEDED/1", "STORAGE_CEILING_EXCEEDED/1"]);
  expect(await codeOf(sink.accept(seg(3).info, seg(3).bytes, mallory))).toBe("STORAGE_CEILING_EXCEEDED/1");
  expect(store.has(seg(3).info.id)).toBe(false);
  // A re-push of what Mallory already sent is still acknowledged (a lost ack), never counted twice.
  expect(await sink.accept(seg(0).info, seg(0).bytes, mallory)).toMatchObject({ duplicate: true });
  // The honest peer still gets its share.
  for (let i = 10; i < 13; i++) expect(await codeOf(sink.accept(seg(i).info, seg(i).bytes, from))).toBe("NO_ERROR");
  expect(ledger.unconsumedBytesFrom("edge-m")).toBe(3 * STORE_BLOCK_BYTES);
  // The share survives a restart (rebuilt from the inbox above the cursor) …
  await ledger.close();
  ledger = await open();
  sink = ledgerSink(ledger, store, { peerShareBytes: share });
  expect(ledger.unconsumedBytesFrom("edge-m")).toBe(3 * STORE_BLOCK_BYTES);
  expect(await codeOf(sink.accept(seg(3).info, seg(3).bytes, mallory))).toBe("STORAGE_CEILING_EXCEEDED/1");
  // … and is given back as the application consumes.
  await ledger.advanceCursor(1);
  expect(ledger.unconsumedBytesFrom("edge-m")).toBe(2 * STORE_BLOCK_BYTES);
  expect(await codeOf(sink.accept(seg(3).info, seg(3).bytes, mallory))).toBe("NO_ERROR");
  // An entry the application passed without applying it (refused, abandoned) is done with too.
  const second = ledger.inbox(1, 1)[0];
  await ledger.passInboxEntry({ seq: 2, segment_id: second?.segment_id ?? "", kind: "data", from: "edge-m", outcome: "refused", code: "TEST_REFUSED", message: "refused", attempts: 1, at: new Date().toISOString() });
  expect(ledger.unconsumedBytesFrom("edge-m")).toBe(2 * STORE_BLOCK_BYTES);
  await ledger.close();
});
