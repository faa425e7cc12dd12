import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { seededRng } from "../../lib/index.js";
import { PeerTransportDouble, type PeerBehaviour } from "../../../test/helpers/peer-transport-double.js";
import { EDGE_DEFAULTS } from "../config/schema.js";
import { openSegmentStore } from "../storage/index.js";
import { createBandwidthLimiter } from "./bandwidth.js";
import { RelayExecutor, bodyBytesSent } from "./executor.js";
import { openRelayLedger } from "./ledger.js";

/**
 * An executor on an edge link (metered, often offline): quota charged for the bytes a push actually sent
 * (docs/relay.md "Executor") and dead-lettered releases re-offered (docs/relay.md "Re-offering a release").
 */

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function rig(peer: PeerBehaviour, quota: number, dir?: string) {
  const root = dir ?? await mkdtemp(join(tmpdir(), "relay-edge-link-"));
  if (dir === undefined) cleanups.push(() => rm(root, { recursive: true, force: true }));
  const ledger = await openRelayLedger(join(root, "ledger.lmdb"));
  const store = await openSegmentStore({ dir: join(root, "segments"), ceilingBytes: 10 * 1024 * 1024 });
  const transport = new PeerTransportDouble({ b: peer });
  const bandwidth = createBandwidthLimiter({ bytes_per_second: 0, daily_quota_bytes: quota, quota_reset_utc: "00:00" }, {
    quotaStore: { load: () => ledger.quotaDay(), save: (d) => ledger.saveQuotaDay(d) },
  });
  const ex = new RelayExecutor({
    ledger, store, transport, bandwidth, rng: seededRng(3), peers: [{ id: "b", address: "127.0.0.1:7000" }],
    config: { ...EDGE_DEFAULTS.relay, retry: { maxRetry: 5, backoffInitialMs: 5, backoffMaxMs: 10, jitter: 0 }, scheduler: { intervalMs: 10, maxConcurrentRelays: 4, maxSegmentsPerRound: 10 } },
  });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await ex.stop();
    await ledger.close();
  };
  cleanups.push(stop);
  return { ex, ledger, bandwidth, transport, root, stop };
}

async function waitFor(what: string, pred: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("relay executor: quota pays for bytes sent", () => {
  it("failed attempts use up quota: 5 refused connections (nothing sent) charge nothing, and the segment still goes out on a quota of one segment", async () => {
    const size = 64 * 1024;
    let attempts = 0;
    const r = await rig(() => (++attempts <= 5 ? { fail: "RELAY_PEER_UNREACHABLE", sent: 0 } : "ack"), size);
    await r.ex.start();
    const info = await r.ex.enqueue(randomBytes(size), "data");
    await waitFor("dead-lettered after 5 refusals", () => r.ex.status().queue.deadletter === 1);
    expect(r.bandwidth.snapshot().daily_used_bytes).toBe(0);
    expect(r.ledger.quotaDay()?.used_bytes).toBe(0);
    await r.ex.retry(info.id, "b");
    await waitFor("delivered", () => r.ex.status().queue.acked === 1);
    expect(r.bandwidth.snapshot()).toMatchObject({ daily_used_bytes: size, quota_drop_count: 0 });
    expect(r.ledger.quotaDay()?.used_bytes).toBe(size);
  });

  it("failed attempts use up quota: a push cut after N body bytes charges N, and an unknown amount charges the whole segment", async () => {
    const size = 10_000;
    let n = 0;
    const r = await rig(() => (++n === 1 ? { fail: "RELAY_PEER_ERROR", sent: 1234 } : n === 2 ? { fail: "RELAY_PEER_ERROR" } : "ack"), 1_000_000);
    await r.ex.start();
    await r.ex.enqueue(randomBytes(size), "data");
    await waitFor("delivered", () => r.ex.status().queue.acked === 1);
    expect(r.bandwidth.snapshot().daily_used_bytes).toBe(1234 + size + size);
    expect(bodyBytesSent({ details: { body_bytes_sent: 99 } }, 50)).toBe(50);
    expect(bodyBytesSent(new Error("x"), 50)).toBe(50);
  });
});

describe("relay executor: a dead-lettered release is re-offered", () => {
  /** A peer that is away while `away.on` is set (connection refused, nothing sent). */
  const awayPeer = (away: { on: boolean }): PeerBehaviour => () => (away.on ? { fail: "RELAY_PEER_UNREACHABLE", sent: 0 } : "ack");

  it("a peer down for ~10 s never gets the release: once a push to it succeeds again, its dead-lettered release goes out (history: reoffered, peer_back)", async () => {
    const away = { on: true };
    const r = await rig(awayPeer(away), 0);
    await r.ex.start();
    const release = await r.ex.enqueue(randomBytes(2048), "release");
    await waitFor("release dead-lettered", () => r.ledger.delivery(release.id, "b")?.state === "deadletter");
    away.on = false; // the peer is back; the next thing sent to it is a data segment
    await r.ex.enqueue(randomBytes(64), "data");
    await waitFor("release delivered", () => r.ledger.delivery(release.id, "b")?.state === "acked");
    const h = r.ledger.delivery(release.id, "b")?.history ?? [];
    expect(h.map((x) => x.outcome)).toEqual(["failed", "failed", "failed", "failed", "deadletter", "reoffered", "acked"]);
    expect(h[5]?.reason).toBe("peer_back");
    expect(r.ledger.delivery(release.id, "b")?.operator_retries).toBe(0);
  });

  it("a peer down for ~10 s never gets the release: restarting edged re-offers it (edged_start), and so does enqueuing the same release again", async () => {
    const away = { on: true };
    const first = await rig(awayPeer(away), 0);
    await first.ex.start();
    const release = await first.ex.enqueue(randomBytes(2048), "release");
    const data = await first.ex.enqueue(randomBytes(64), "data");
    await waitFor("both dead-lettered", () => first.ex.status().queue.deadletter === 2);
    await first.stop();
    away.on = false;
    const second = await rig(awayPeer(away), 0, first.root);
    await second.ex.start();
    await waitFor("release delivered after the restart", () => second.ledger.delivery(release.id, "b")?.state === "acked");
    expect(second.ledger.delivery(release.id, "b")?.history.find((x) => x.outcome === "reoffered")?.reason).toBe("edged_start");
    // Data segments are not re-offered: their dead letters wait for the operator (edgectl relay deadletter retry).
    expect(second.ledger.delivery(data.id, "b")?.state).toBe("deadletter");
    await second.stop();

    // Enqueuing the same active release again (edged does so on start) re-offers its dead letter too.
    away.on = true;
    const third = await rig(awayPeer(away), 0, first.root);
    await third.ex.start();
    const bytes = randomBytes(4096);
    const again = await third.ex.enqueue(bytes, "release");
    await waitFor("dead-lettered", () => third.ledger.delivery(again.id, "b")?.state === "deadletter");
    away.on = false;
    expect((await third.ex.enqueue(bytes, "release")).created).toBe(false);
    await waitFor("re-enqueued release delivered", () => third.ledger.delivery(again.id, "b")?.state === "acked");
    expect(third.ledger.delivery(again.id, "b")?.history.find((x) => x.outcome === "reoffered")?.reason).toBe("release_reenqueued");
  });

  it("a release the peer refused (RELAY_PEER_REJECTED, final) is not re-offered when the peer answers again", async () => {
    let n = 0;
    const r = await rig((seg) => (seg.kind === "release" ? { fail: "RELAY_PEER_REJECTED", retryable: false } : (++n, "ack")), 0);
    await r.ex.start();
    const release = await r.ex.enqueue(randomBytes(2048), "release");
    await waitFor("release dead-lettered", () => r.ledger.delivery(release.id, "b")?.state === "deadletter");
    await r.ex.enqueue(randomBytes(64), "data");
    await waitFor("data acked", () => n === 1 && r.ex.status().queue.acked === 1);
    expect(r.ledger.delivery(release.id, "b")?.state).toBe("deadletter");
  });
});

