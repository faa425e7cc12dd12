/**
 * Adversarial review (issue 11, relay half): the operator drops a peer from
 * edge.toml (decommissioned, or its key leaked) and restarts edged while
 * segments are still owed to it. The ledger keeps those deliveries
 * `scheduled`; the executor never schedules a peer it does not know, never
 * dead-letters them, and `deadletter retry/purge` cannot reach them. Under
 * all_peers the segment is then never delivered (so never evictable), and
 * `edgectl relay status` counts deliveries in its overall queue that no
 * listed peer accounts for.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { seededRng } from "../../../src/lib/index.js";
import { EDGE_DEFAULTS, RelayExecutor, createBandwidthLimiter, openRelayLedger } from "../../../src/edge/index.js";
import { openSegmentStore } from "../../../src/edge/storage/index.js";
import { PeerTransportDouble } from "../../helpers/peer-transport-double.js";
import type { PeerBehaviour } from "../../helpers/peer-transport-double.js";

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

it("attack (config change): a peer dropped from edge.toml across a restart — its owed deliveries are settled, the segment counts as delivered to the remaining peers, and status totals add up", async () => {
  const root = await mkdtemp(join(tmpdir(), "rev2-drop-"));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  const open = async (peers: Record<string, PeerBehaviour>) => {
    const ledger = await openRelayLedger(join(root, "ledger.lmdb"));
    const store = await openSegmentStore({ dir: join(root, "segments"), ceilingBytes: 1 << 20 });
    const transport = new PeerTransportDouble(peers);
    const ex = new RelayExecutor({
      ledger, store, transport, bandwidth: createBandwidthLimiter({ bytes_per_second: 0, daily_quota_bytes: 0, quota_reset_utc: "00:00" }),
      config: { ...EDGE_DEFAULTS.relay, successCondition: "all_peers", retry: { maxRetry: 1000, backoffInitialMs: 5, backoffMaxMs: 10, jitter: 0 }, scheduler: { intervalMs: 20, maxConcurrentRelays: 8, maxSegmentsPerRound: 100 } },
      rng: seededRng(7), peers: Object.keys(peers).map((id, i) => ({ id, address: `127.0.0.1:${7000 + i}` })),
    });
    const close = async () => { await ex.stop(); await ledger.close(); };
    return { ex, ledger, transport, close };
  };
  const first = await open({ b: "ack", c: { fail: "RELAY_PEER_UNREACHABLE", retryable: true } });
  await first.ex.start();
  const seg = await first.ex.enqueue(randomBytes(64), "data");
  await waitFor("b acked", () => (first.transport.received.get("b") ?? []).includes(seg.id));
  await first.close();

  // edge.toml now lists only b; edged restarts.
  const second = await open({ b: "ack" });
  cleanups.push(second.close);
  await second.ex.start();
  await new Promise((r) => setTimeout(r, 200));
  const st = second.ex.status();
  const perPeer = st.peers.reduce((n, p) => n + p.queue.scheduled + p.queue.inflight + p.queue.acked + p.queue.failed + p.queue.deadletter, 0);
  const overall = st.queue.scheduled + st.queue.inflight + st.queue.acked + st.queue.failed + st.queue.deadletter;
  expect({ overall_equals_per_peer: overall === perPeer, delivered: second.ledger.segment(seg.id)?.delivered_at != null }).toEqual({ overall_equals_per_peer: true, delivered: true });
});
