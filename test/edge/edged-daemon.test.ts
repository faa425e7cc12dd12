// The composition root in-process: state-root lock, control socket, reload (SIGHUP path and file watch),
// shutdown, Prometheus. The relay's parts are recording doubles (test/helpers/relay-parts-double.ts).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ControlClient, createBandwidthLimiter, loadEdgeConfig, openSegmentStore } from "../../src/edge/index.js";
import type { EdgeConfig, RelayParts } from "../../src/edge/index.js";
import { stateRootPaths } from "../../src/node/index.js";
import { startEdgeDaemon } from "../../src/edge/daemon/daemon.js";
import type { EdgeDaemon } from "../../src/edge/daemon/daemon.js";
import { createLogger } from "../../src/observability/index.js";
import { needs } from "../helpers/needs.js";
import { EngineRecorder, MemoryStore, loadJsonEdgeConfig, recordingParts, testEdgeConfig } from "../helpers/relay-parts-double.js";

const silent = createLogger({ name: "test.edged", level: "silent" });

async function until<T>(f: () => Promise<T>, ok: (v: T) => boolean, ms = 5_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("edged composition root", () => {
  let dir: string;
  let cfgPath: string;
  let config: EdgeConfig;
  let parts: ReturnType<typeof recordingParts>;
  let daemon: EdgeDaemon | undefined;
  let client: ControlClient;
  const start = (over: { prometheusAddr?: string; watchConfig?: boolean } = {}): Promise<EdgeDaemon> =>
    startEdgeDaemon(config, { controlSocket: join(dir, "run", "ctl.sock"), parts: parts.factory, loadConfig: loadJsonEdgeConfig, log: silent, watchConfig: over.watchConfig ?? false, ...over });
  const writeConfig = (c: EdgeConfig): Promise<void> => writeFile(cfgPath, JSON.stringify(c));

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "edged-"));
    cfgPath = join(dir, "edge.json");
    config = testEdgeConfig(cfgPath, join(dir, "state"));
    await writeConfig(config);
    parts = recordingParts();
    client = new ControlClient({ socketPath: join(dir, "run", "ctl.sock") });
  });
  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("holds the state root: a second edged on it is DAEMON_ALREADY_RUNNING; after stop it can start again", async () => {
    daemon = await start();
    expect((await client.status()).node_id).toBe("edge-a");
    await expect(startEdgeDaemon(config, { controlSocket: join(dir, "other.sock"), parts: parts.factory, loadConfig: loadJsonEdgeConfig, log: silent, watchConfig: false })).rejects.toMatchObject({ code: "DAEMON_ALREADY_RUNNING" });
    await daemon.stop();
    daemon = await start();
    expect((await client.status()).enabled).toBe(true);
  });

  it("stop stops the relay, closes its parts (ledger), removes the socket and frees the state root", async () => {
    daemon = await start();
    const p = parts.last();
    expect(p.engine.started).toBe(1);
    await daemon.stop();
    expect(p.engine.stopped).toHaveLength(1);
    expect(p.closed).toBe(1);
    expect(existsSync(join(dir, "run", "ctl.sock"))).toBe(false);
    expect(existsSync(join(dir, "state", "edge", "edged.lock"))).toBe(false);
    daemon = undefined;
  });

  it("set-bandwidth over the socket applies at once (applied=true) and shows in status", async () => {
    daemon = await start();
    const r = await client.setBandwidth({ bytes_per_second: 1234 });
    expect(r.applied).toBe(true);
    expect(parts.last().bandwidth.updates.at(-1)).toMatchObject({ bytes_per_second: 1234 });
    // VAL23's finding: a raised quota must release the deliveries the quota was holding, now, not at the reset.
    await vi.waitFor(() => expect(parts.last().engine.bandwidthChangedCalls).toBe(1));
    expect((await client.status()).bandwidth.bytes_per_second).toBe(1234);
    expect((await client.config()).bandwidth.bytes_per_second).toBe(1234);
  });

  it("a reload (SIGHUP) applies a changed [bandwidth] without restart; other changed keys are reported as restart_required", async () => {
    daemon = await start();
    await writeConfig({ ...config, bandwidth: { ...config.bandwidth, bytes_per_second: 5000, daily_quota_bytes: 10_000 }, peers: [...config.peers, { id: "edge-c", address: "127.0.0.1:7445" }] });
    const out = await daemon.reload();
    expect(out).toEqual({ ok: true, bandwidth_applied: true, restart_required: ["peers"] });
    expect(parts.last().bandwidth.cfg).toMatchObject({ bytes_per_second: 5000, daily_quota_bytes: 10_000 });
    await vi.waitFor(() => expect(parts.last().engine.bandwidthChangedCalls).toBe(1));
    const s = await client.status();
    expect(s.bandwidth.bytes_per_second).toBe(5000);
    expect(s.config.restart_required).toEqual(["peers"]);
    // The running peers are unchanged until a restart.
    expect(s.peers.map((p) => p.peer_id)).toEqual(["edge-b"]);
    expect(parts.last().engine.started).toBe(1);
  });

  it("an invalid new edge.toml keeps the running config and shows config_reload_error; a fixed file clears it", async () => {
    daemon = await start();
    await client.setBandwidth({ bytes_per_second: 777 });
    await writeFile(cfgPath, "{ not json");
    const out = await daemon.reload();
    expect(out.ok).toBe(false);
    const s = await client.status();
    expect(s.config.config_reload_error).toContain("edge.json");
    expect(s.bandwidth.bytes_per_second).toBe(777);
    expect((await client.config()).config_reload_error).not.toBeNull();
    await writeConfig(config);
    expect((await daemon.reload()).ok).toBe(true);
    const after = await client.status();
    expect(after.config.config_reload_error).toBeNull();
    // The file's [bandwidth] did not change, so the operator's live value stays.
    expect(after.bandwidth.bytes_per_second).toBe(777);
  });

  it("an edit of the config file is picked up by the file watch, without SIGHUP", async () => {
    daemon = await start({ watchConfig: true });
    await writeConfig({ ...config, bandwidth: { ...config.bandwidth, bytes_per_second: 4242 } });
    const s = await until(() => client.status(), (x) => x.bandwidth.bytes_per_second === 4242);
    expect(s.bandwidth.bytes_per_second).toBe(4242);
  });

  it("relay send through the socket reaches the engine and the queue shows it per peer", async () => {
    daemon = await start();
    const info = await client.enqueue(new TextEncoder().encode("abc"));
    expect(info.created).toBe(true);
    const s = await client.status();
    expect(s.queue.total).toBe(1);
    expect(s.peers[0]?.queue.scheduled).toBe(1);
  });

  it("refused peers show in status", async () => {
    daemon = await start();
    parts.last().refusals.push({ direction: "inbound", peer: "127.0.0.1:5555", reason: "UNKNOWN_CA", detail: "certificate signed by another CA", at: "2026-01-01T00:00:00.000Z", count: 2 });
    expect((await client.status()).refused_peers).toMatchObject([{ reason: "UNKNOWN_CA", count: 2 }]);
  });

  needs("promtool").it("serves Prometheus metrics that promtool check metrics accepts", async () => {
    daemon = await start({ prometheusAddr: "127.0.0.1:0" });
    await client.enqueue(new TextEncoder().encode("abc"));
    parts.last().refusals.push({ direction: "outbound", peer: "edge-b", reason: "CERT_EXPIRED", detail: "expired", at: "2026-01-01T00:00:00.000Z", count: 1 });
    parts.last().bandwidth.throttles = 3;
    const res = await fetch(`http://${daemon.metricsAddress ?? ""}/metrics`);
    expect(res.status).toBe(200);
    const body = await res.text();
    expect(body).toContain('edged_relay_queue_depth{state="scheduled",peer="edge-b"} 1');
    expect(body).toContain("edged_bandwidth_throttled_total 3");
    expect(body).toContain('edged_relay_refused_peers{direction="outbound",reason="CERT_EXPIRED"} 1');
    const check = spawnSync("promtool", ["check", "metrics"], { input: body, encoding: "utf8" });
    expect(check.status, check.stdout + check.stderr).toBe(0);
  });
});

describe("edged composition root with the real edge.toml loader, segment store and bandwidth limiter", () => {
  it("an edit of edge.toml changes the real limiter's rate at once; an invalid edit names the key and keeps the rate", async () => {
    const dir = await mkdtemp(join(tmpdir(), "edged-real-"));
    const cfg = join(dir, "edge.toml");
    const file = (rate: number | string): string =>
      `config_version = 1\n[node]\nid = "edge-a"\nstate_root = "state"\n[transport]\ncert_file = "a.crt"\nkey_file = "a.key"\nca_file = "ca.crt"\n[bandwidth]\nbytes_per_second = ${rate}\n[[peers]]\nid = "edge-b"\naddress = "127.0.0.1:7444"\n`;
    await writeFile(cfg, file(1000));
    await mkdir(join(dir, "state")); // edged refuses a missing state root
    const config = await loadEdgeConfig(cfg);
    const parts = async (c: EdgeConfig): Promise<RelayParts> => {
      const store = await openSegmentStore({ dir: stateRootPaths(c.node.stateRoot).edgeSegments, ceilingBytes: c.storage.ceilingBytes });
      const engine = new EngineRecorder(new MemoryStore(), c.peers.map((p) => p.id));
      return { store, bandwidth: createBandwidthLimiter({ ...c.bandwidth }), engine, refused: () => [], close: () => Promise.resolve() };
    };
    const d = await startEdgeDaemon(config, { controlSocket: join(dir, "ctl.sock"), parts, loadConfig: loadEdgeConfig, log: silent, watchConfig: false });
    const c = new ControlClient({ socketPath: join(dir, "ctl.sock") });
    try {
      expect((await c.status()).bandwidth).toMatchObject({ bytes_per_second: 1000, unlimited: false });
      await writeFile(cfg, file(250_000));
      expect(await d.reload()).toMatchObject({ ok: true, bandwidth_applied: true, restart_required: [] });
      expect((await c.status()).bandwidth.bytes_per_second).toBe(250_000);
      await writeFile(cfg, file('"fast"'));
      expect((await d.reload()).ok).toBe(false);
      const s = await c.status();
      expect(s.config.config_reload_error).toMatch(/bytes_per_second/);
      expect(s.bandwidth.bytes_per_second).toBe(250_000);
    } finally {
      await d.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
