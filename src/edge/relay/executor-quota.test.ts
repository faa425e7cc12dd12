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

/** Quota charged for the bytes a push actually sent (docs/relay.md "Executor", "Bandwidth and quota"). */

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function rig(peer: PeerBehaviour, quota: number) {
  const root = await mkdtemp(join(tmpdir(), "relay-quota-"));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
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
  cleanups.push(async () => { await ex.stop(); await ledger.close(); });
  return { ex, ledger, bandwidth };
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
