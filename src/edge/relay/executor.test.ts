import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { seededRng } from "../../lib/index.js";
import { PeerTransportDouble, type PeerBehaviour } from "../../../test/helpers/peer-transport-double.js";
import { EDGE_DEFAULTS } from "../config/schema.js";
import { openSegmentStore } from "../storage/index.js";
import { segmentName } from "../storage/names.js";
import type { BandwidthConfig, BandwidthLimiter, SegmentStore } from "../types.js";
import { backoffDelay } from "./backoff.js";
import { createBandwidthLimiter } from "./bandwidth.js";
import { RelayExecutor, classifyFailure, type RelayExecutorConfig } from "./executor.js";
import { openRelayLedger, type RelayLedger } from "./ledger.js";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Rig { ex: RelayExecutor; ledger: RelayLedger; store: SegmentStore; transport: PeerTransportDouble; bandwidth: BandwidthLimiter; ledgerPath: string; dir: string }

function config(over: Partial<RelayExecutorConfig> & { maxRetry?: number } = {}): RelayExecutorConfig {
  const { maxRetry, ...rest } = over;
  return {
    ...EDGE_DEFAULTS.relay,
    retry: { maxRetry: maxRetry ?? 5, backoffInitialMs: 5, backoffMaxMs: 20, jitter: 0.2 },
    scheduler: { intervalMs: 20, maxConcurrentRelays: 8, maxSegmentsPerRound: 100 },
    ...rest,
  };
}

async function rig(peers: Record<string, PeerBehaviour>, cfg: RelayExecutorConfig = config(), bw: Partial<BandwidthConfig> = {}, dir?: string): Promise<Rig> {
  const root = dir ?? await mkdtemp(join(tmpdir(), "relay-ex-"));
  if (dir === undefined) cleanups.push(() => rm(root, { recursive: true, force: true }));
  const ledgerPath = join(root, "edge", "relay", "ledger.lmdb");
  const ledger = await openRelayLedger(ledgerPath);
  const store = await openSegmentStore({ dir: join(root, "edge", "segments"), ceilingBytes: 10 * 1024 * 1024 });
  const transport = new PeerTransportDouble(peers);
  const bandwidth = createBandwidthLimiter({ bytes_per_second: 0, daily_quota_bytes: 0, quota_reset_utc: "00:00", ...bw });
  const ex = new RelayExecutor({
    ledger, store, transport, bandwidth, config: cfg, rng: seededRng(7),
    peers: Object.keys(peers).map((id, i) => ({ id, address: `127.0.0.1:${7000 + i}` })),
  });
  cleanups.push(async () => { await ex.stop(); await ledger.close(); });
  return { ex, ledger, store, transport, bandwidth, ledgerPath, dir: root };
}

async function waitFor(what: string, pred: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const seg = (n: number): Uint8Array => Buffer.concat([Buffer.from(`segment ${n} `), randomBytes(32)]);

describe("relay executor", () => {
  it("delivers every segment to every peer and accounts for it in status", async () => {
    const r = await rig({ b: "ack", c: "ack" }, config({ successCondition: "all_peers" }));
    await r.ex.start();
    const infos = [];
    for (let i = 0; i < 10; i++) infos.push(await r.ex.enqueue(seg(i), "data"));
    await waitFor("all acked", () => r.ex.status().queue.acked === 20);
    const st = r.ex.status();
    expect(st).toMatchObject({ delivered_segments: 10, segments: 10, success: "all_peers", running: true, queue: { scheduled: 0, inflight: 0, failed: 0, deadletter: 0, total: 20 } });
    expect(st.peers.map((p) => [p.id, p.queue.acked, p.last_error])).toEqual([["b", 10, null], ["c", 10, null]]);
    for (const p of ["b", "c"]) expect([...(r.transport.received.get(p) ?? [])].sort()).toEqual(infos.map((i) => i.id).sort());
    expect(r.ex.stats()).toEqual({ delivered_total: 10, pushes_acked_total: 20, failed_attempts_total: 0, bytes_sent_total: 2 * infos.reduce((n, i) => n + i.size, 0), quota_deferrals_total: 0 });
    expect((await r.ex.enqueue(seg(99), "data")).created).toBe(true);
  });

  it("queue drain: 200 × 64 B segments to two peers (one dead) — zero loss, the live peer drains them all, queue counts monotonic", async () => {
    const r = await rig({ b: "ack", dead: "hang" });
    await r.ex.start();
    const ids = new Set<string>();
    for (let i = 0; i < 200; i++) ids.add((await r.ex.enqueue(randomBytes(64), "data")).id);
    let lastAcked = 0;
    await waitFor("b drained", () => {
      const acked = r.ex.status().queue.acked;
      expect(acked).toBeGreaterThanOrEqual(lastAcked);
      lastAcked = acked;
      return acked === 200;
    }, 20_000);
    expect(new Set(r.transport.received.get("b"))).toEqual(ids);
    expect(r.ex.status().queue).toMatchObject({ total: 400, acked: 200, inflight: r.ex.slotsPerPeer, scheduled: 200 - r.ex.slotsPerPeer });
  });

  it("stop(graceMs) lets a push in flight finish within the grace; without grace it is aborted back to scheduled", async () => {
    const r = await rig({ b: { ackAfterMs: 150 } });
    await r.ex.start();
    const a = await r.ex.enqueue(seg(1), "data");
    await waitFor("in flight", () => r.ex.status().queue.inflight === 1);
    await r.ex.stop(5_000);
    expect(r.ledger.delivery(a.id, "b")?.state).toBe("acked");
    await r.ex.start();
    const c = await r.ex.enqueue(seg(2), "data");
    await waitFor("in flight", () => r.ex.status().queue.inflight === 1);
    await r.ex.stop();
    expect(r.ledger.delivery(c.id, "b")).toMatchObject({ state: "scheduled", attempts: 0 });
    expect(r.ledger.delivery(c.id, "b")?.history.map((h) => h.outcome)).toEqual(["aborted"]);
  });

  it("a slow or dead peer never delays delivery to the others: one peer hangs forever, the other gets every segment quickly", async () => {
    const r = await rig({ dead: "hang", b: "ack" });
    await r.ex.start();
    const started = Date.now();
    for (let i = 0; i < 40; i++) await r.ex.enqueue(seg(i), "data");
    await waitFor("b got all 40", () => (r.transport.received.get("b")?.length ?? 0) === 40, 5_000);
    expect(Date.now() - started).toBeLessThan(5_000);
    const dead = r.ex.status().peers.find((p) => p.id === "dead");
    expect(dead?.active).toBe(r.ex.slotsPerPeer);
    expect(dead?.queue.inflight).toBe(r.ex.slotsPerPeer);
    expect(r.transport.hanging).toBe(r.ex.slotsPerPeer);
    // stop() aborts the hung pushes cleanly: they go back to scheduled, not counted, nothing lost.
    await r.ex.stop();
    const q = r.ex.status().queue;
    expect(q).toMatchObject({ inflight: 0, acked: 40, scheduled: 40, total: 80 });
    expect(r.ledger.deliveriesWhere((d) => d.peer_id === "dead").every((d) => d.attempts === 0)).toBe(true);
  });

  it("VAL19 outcome: when max_retry is exhausted every segment reaches DEADLETTER; an operator retry then delivers it", async () => {
    let up = false;
    const r = await rig({ b: () => (up ? "ack" : { fail: "RELAY_PEER_UNREACHABLE" }) }, config({ maxRetry: 3 }));
    await r.ex.start();
    const infos = [];
    for (let i = 0; i < 8; i++) infos.push(await r.ex.enqueue(seg(i), "data"));
    await waitFor("all dead-lettered", () => r.ex.status().queue.deadletter === 8);
    const dls = r.ex.deadletters(50);
    expect(dls).toHaveLength(8);
    for (const d of dls) {
      expect(d).toMatchObject({ attempts: 3, last_error: { code: "RELAY_PEER_UNREACHABLE" } });
      expect(d.history.map((h) => h.outcome)).toEqual(["failed", "failed", "deadletter"]);
      expect(r.transport.pushes.get(`b/${d.segment_id}`)).toBe(3);
    }
    up = true;
    for (const i of infos) await r.ex.retry(i.id, "b");
    await waitFor("all delivered", () => r.ex.status().delivered_segments === 8);
    expect(r.ex.deadletters(50)).toEqual([]);
    expect(r.ledger.delivery(infos[0]?.id ?? "", "b")).toMatchObject({ state: "acked", attempts: 1, operator_retries: 1 });
  });

  it("a non-retryable failure and a missing segment go to DEADLETTER at once", async () => {
    const r = await rig({ b: { fail: "RELAY_PEER_REJECTED", retryable: false } });
    await r.ex.start();
    const a = await r.ex.enqueue(seg(1), "data");
    await waitFor("rejected dead-lettered", () => r.ex.status().queue.deadletter === 1);
    expect(r.ex.inspect(a.id, "b")).toMatchObject({ attempts: 1, last_error: { code: "RELAY_PEER_REJECTED" } });
    await r.ex.stop();
    r.transport.behaviour.set("b", "ack");
    const gone = await r.ex.enqueue(seg(2), "data");
    await r.store.remove(gone.id, "purged");
    await r.ex.start();
    await waitFor("missing dead-lettered", () => r.ex.status().queue.deadletter === 2);
    expect(r.ex.inspect(gone.id, "b")).toMatchObject({ attempts: 0, last_error: { code: "SEGMENT_MISSING" } });
  });

  it("a segment corrupted on disk is dead-lettered at once as SEGMENT_CORRUPT, never pushed", async () => {
    const r = await rig({ b: "ack" });
    const a = await r.ex.enqueue(seg(1), "data");
    await writeFile(join(r.dir, "edge", "segments", segmentName(a.id, "data")), "tampered");
    await r.ex.start();
    await waitFor("dead-lettered", () => r.ex.status().queue.deadletter === 1);
    expect(r.ex.inspect(a.id, "b")).toMatchObject({ attempts: 1, last_error: { code: "SEGMENT_CORRUPT" } });
    expect(r.transport.pushes.size).toBe(0);
  });

  it("the daily quota holds deliveries back until the reset without counting an attempt", async () => {
    const r = await rig({ b: "ack" }, config(), { daily_quota_bytes: 100 });
    await r.ex.start();
    const small = await r.ex.enqueue(new Uint8Array(60).fill(1), "data");
    const big = await r.ex.enqueue(new Uint8Array(60).fill(2), "data");
    await waitFor("one delivered, one deferred", () => r.ex.status().queue.acked === 1 && r.ex.status().quota_deferrals >= 1);
    const held = [small, big].map((i) => r.ledger.delivery(i.id, "b")).find((d) => d?.state !== "acked");
    expect(held).toMatchObject({ state: "scheduled", attempts: 0, history: [] });
    expect(Date.parse(held?.next_attempt_at ?? "")).toBe(Date.parse(r.ex.status().bandwidth.quota_resets_at));
    expect(r.ex.status().bandwidth.quota_drop_count).toBeGreaterThanOrEqual(1);
    // The quota raised at run time (edgectl relay config set-bandwidth): the held delivery goes out now, not at the reset.
    r.bandwidth.update({ ...r.bandwidth.snapshot(), daily_quota_bytes: 0 });
    await r.ex.resumeQuotaDeferred();
    await waitFor("both delivered", () => r.ex.status().queue.acked === 2);
  });

  it("evict_on_relay removes a delivered segment from the store once no peer still needs it", async () => {
    const r = await rig({ b: "ack", c: "ack" }, config({ evictOnRelay: true }));
    await r.ex.start();
    const a = await r.ex.enqueue(seg(1), "data");
    await waitFor("both acked", () => r.ex.status().queue.acked === 2);
    await waitFor("evicted", () => !r.store.has(a.id));
    expect(r.store.evictions()).toMatchObject([{ id: a.id, reason: "delivered_evict_on_relay" }]);
  });

  it("purge: a dry run changes nothing; with force the dead letters go and their unneeded bytes are removed as purged", async () => {
    const r = await rig({ b: { fail: "RELAY_PEER_REJECTED", retryable: false } });
    await r.ex.start();
    const a = await r.ex.enqueue(seg(1), "data");
    await waitFor("dead-lettered", () => r.ex.status().queue.deadletter === 1);
    const dry = await r.ex.purge({ force: false });
    expect(dry).toMatchObject({ dry_run: true, purged: [{ segment_id: a.id, peer_id: "b" }] });
    expect(r.store.has(a.id)).toBe(true);
    expect(r.ex.deadletters()).toHaveLength(1);
    const done = await r.ex.purge({ force: true });
    expect(done.dry_run).toBe(false);
    expect(r.ex.deadletters()).toEqual([]);
    expect(r.store.has(a.id)).toBe(false);
    expect(r.store.evictions()).toMatchObject([{ id: a.id, reason: "purged" }]);
    expect(r.ex.status().deadletter_purges).toMatchObject([{ reason: "operator", count: 1 }]);
  });

  it("retention purges expired dead letters on its own and records it", async () => {
    const r = await rig({ b: { fail: "RELAY_PEER_REJECTED", retryable: false } }, config({ deadletterRetentionMs: 50 }));
    await r.ex.start();
    const a = await r.ex.enqueue(seg(1), "data");
    await waitFor("dead-lettered", () => r.ledger.delivery(a.id, "b")?.state === "deadletter");
    await r.ex.stop();
    await new Promise((res) => setTimeout(res, 60));
    await r.ex.start(); // a fresh start sweeps at once (then once a minute)
    await waitFor("purged by retention", () => r.ex.status().deadletter_purges.length === 1);
    expect(r.ex.status().deadletter_purges).toMatchObject([{ reason: "retention", count: 1 }]);
    await waitFor("bytes dropped", () => !r.store.has(a.id));
    expect(r.store.evictions()).toMatchObject([{ id: a.id, reason: "deadletter_retention" }]);
  });

  it("retention sweeps dead letters that expire while running, not only at start (short retention: within ~1 s)", async () => {
    const r = await rig({ b: { fail: "RELAY_PEER_REJECTED", retryable: false } }, config({ deadletterRetentionMs: 300 }));
    await r.ex.start();
    const a = await r.ex.enqueue(seg(1), "data");
    await waitFor("dead-lettered", () => r.ledger.delivery(a.id, "b")?.state === "deadletter");
    // No restart: the start's sweep came before the dead letter existed; a later sweep must find it.
    await waitFor("purged by retention", () => r.ex.status().deadletter_purges.length === 1, 5_000);
    expect(r.ex.deadletters()).toEqual([]);
  });

  it("after a crash, an interrupted attempt counts: one that used the last attempt is dead-lettered, others are retried", async () => {
    const dir = await mkdtemp(join(tmpdir(), "relay-ex-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const first = await rig({ b: "hang", c: "hang" }, config({ maxRetry: 1 }), {}, dir);
    await first.ex.start();
    const a = await first.ex.enqueue(seg(1), "data");
    await waitFor("in flight", () => first.ex.status().queue.inflight === 2);
    await first.ledger.close(); // the crash: no stop(), the ledger still says inflight
    const second = await rig({ b: "ack", c: "ack" }, config({ maxRetry: 2 }), {}, dir);
    expect(second.ledger.recovered).toHaveLength(2);
    await second.ex.start();
    await waitFor("delivered after recovery", () => second.ex.status().queue.acked === 2);
    expect(second.ledger.delivery(a.id, "b")?.history.map((h) => h.outcome)).toEqual(["interrupted", "acked"]);
  });

  it("classifies push failures: unknown errors are retryable peer errors; SEGMENT_MISSING never retries", () => {
    expect(classifyFailure(new Error("boom"))).toEqual({ code: "RELAY_PEER_ERROR", message: "boom", retryable: true });
    expect(classifyFailure({ code: "SEGMENT_MISSING", message: "x", details: { retryable: true } }).retryable).toBe(false);
    expect(classifyFailure({ code: "RELAY_ACK_TIMEOUT", message: "x" }).retryable).toBe(true);
    expect(classifyFailure({ code: "RELAY_PEER_REJECTED", message: "x" }).retryable).toBe(false);
  });

  it("backoff grows exponentially from initial, is capped at max, and its jitter replays from the seed", () => {
    const cfg = { backoffInitialMs: 100, backoffMaxMs: 1_000, jitter: 0 };
    expect([1, 2, 3, 4, 5, 30].map((n) => backoffDelay(n, cfg, seededRng(1)))).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    const jittered = { ...cfg, jitter: 0.5 };
    const a = [1, 2, 3].map((n) => backoffDelay(n, jittered, seededRng(42)));
    expect([1, 2, 3].map((n) => backoffDelay(n, jittered, seededRng(42)))).toEqual(a);
    const rng = seededRng(9);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(3, jittered, rng);
      expect(d).toBeGreaterThanOrEqual(200);
      expect(d).toBeLessThanOrEqual(600);
    }
  });
});

describe("relay executor: a peer removed from edge.toml (settled on start)", () => {
  it("attack (config change): a segment owed only to the removed peer loses its record and bytes (purged); one only the removed peer acked stays delivered and LRU-evictable; nothing settled counts as acked", async () => {
    const first = await rig({ b: { fail: "RELAY_PEER_UNREACHABLE", retryable: true }, c: "ack" }, config({ maxRetry: 1000, successCondition: "one_peer" }));
    await first.ex.start();
    const ackedByC = await first.ex.enqueue(seg(1), "data");
    await waitFor("c acked", () => first.ledger.delivery(ackedByC.id, "c")?.state === "acked");
    await first.ex.stop();
    await first.ledger.close();

    // edge.toml now lists only d (b and c are gone); an undelivered segment owed to b and c only was enqueued before.
    const second = await rig({ d: "ack" }, config({ successCondition: "all_peers" }), {}, first.dir);
    const onlyOld = await second.store.put(seg(2), "data");
    await second.ledger.schedule(onlyOld.info, ["b", "c"], "all_peers");
    await second.ex.start();
    const st = second.ex.status();
    expect(st.queue.total).toBe(0);
    expect(st.peer_settlements.map((s) => [s.peer_id, s.count, s.unacked])).toEqual([["b", 2, 2], ["c", 2, 1]]);
    expect(second.ledger.segment(onlyOld.info.id)).toBeUndefined();
    expect(second.store.has(onlyOld.info.id)).toBe(false);
    expect(second.store.evictions().filter((e) => e.id === onlyOld.info.id).map((e) => e.reason)).toEqual(["purged"]);
    expect(second.ledger.segment(ackedByC.id)).toMatchObject({ peers: [], delivered_at: expect.any(String) as string });
    expect(second.ledger.summary().delivered_segments).toBe(1); // the one c acked before; the settlement delivered nothing
    // LRU may take the delivered segment's bytes (no configured peer is owed it).
    const big = await second.store.put(randomBytes(10 * 1024 * 1024), "data", (id) => id === ackedByC.id && second.ledger.deliveriesOf(id).length === 0);
    expect(big.evicted.map((e) => e.id)).toEqual([ackedByC.id]);
  });
});
