/**
 * Adversarial review (issue 11, relay half): LRU eviction under the
 * `one_peer` success condition. A segment counts as delivered at the first
 * ack, but the other peers are still owed it (they keep being pushed). The
 * executor's eviction rule is `delivered_at != null` alone, so a new enqueue
 * at the ceiling evicts a segment a briefly-unreachable peer still needs:
 * that delivery then fails with SEGMENT_MISSING (not retryable) and goes to
 * DEADLETTER — the peer never gets it, though nothing was ever lost on the
 * wire. (evict_on_relay already waits until no other delivery needs it.)
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { seededRng } from "../../../src/lib/index.js";
import { EDGE_DEFAULTS, RelayExecutor, createBandwidthLimiter, openRelayLedger } from "../../../src/edge/index.js";
import { STORE_BLOCK_BYTES, openSegmentStore } from "../../../src/edge/storage/index.js";
import { PeerTransportDouble } from "../../helpers/peer-transport-double.js";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function waitFor(what: string, pred: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

it("attack: under one_peer, LRU eviction at the ceiling never removes a segment a temporarily unreachable peer is still owed (no SEGMENT_MISSING dead letter)", async () => {
  const root = await mkdtemp(join(tmpdir(), "rev2-evict-"));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  const ledger = await openRelayLedger(join(root, "ledger.lmdb"));
  // Room for two segments: each 400-byte segment costs one 4 KiB block under the ceiling (disk cost, docs/segment-store.md).
  const store = await openSegmentStore({ dir: join(root, "segments"), ceilingBytes: 2 * STORE_BLOCK_BYTES + 1000 });
  let cUp = false;
  const transport = new PeerTransportDouble({ b: "ack", c: () => (cUp ? "ack" : { fail: "RELAY_PEER_UNREACHABLE", retryable: true }) });
  const ex = new RelayExecutor({
    ledger, store, transport, bandwidth: createBandwidthLimiter({ bytes_per_second: 0, daily_quota_bytes: 0, quota_reset_utc: "00:00" }),
    config: { ...EDGE_DEFAULTS.relay, successCondition: "one_peer", retry: { maxRetry: 1000, backoffInitialMs: 5, backoffMaxMs: 10, jitter: 0 }, scheduler: { intervalMs: 20, maxConcurrentRelays: 8, maxSegmentsPerRound: 100 } },
    rng: seededRng(7), peers: [{ id: "b", address: "127.0.0.1:7000" }, { id: "c", address: "127.0.0.1:7001" }],
  });
  cleanups.push(async () => { await ex.stop(); await ledger.close(); });
  await ex.start();
  const first = await ex.enqueue(randomBytes(400), "data");
  await waitFor("b acked the first segment", () => (transport.received.get("b") ?? []).includes(first.id));
  // Two more segments: the ceiling has room for two. A refusal here is acceptable; a silent eviction of `first` is not.
  for (let i = 0; i < 2; i++) await ex.enqueue(randomBytes(400), "data").catch(() => undefined);
  cUp = true;
  await waitFor("c's queue settled", () => {
    const c = ex.status().peers.find((p) => p.id === "c");
    return c !== undefined && c.queue.scheduled + c.queue.inflight + c.queue.failed === 0;
  });
  expect(ex.deadletters(10).map((d) => [d.segment_id, d.peer_id, d.last_error?.code])).toEqual([]);
  expect(transport.received.get("c") ?? []).toContain(first.id);
});
