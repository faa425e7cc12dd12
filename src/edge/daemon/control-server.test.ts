import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { lstat, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EdgeError } from "../errors.js";
import type { BandwidthConfig, SegmentKind } from "../types.js";
import { createControlServer } from "./control-server.js";
import { listenControlSocket } from "./control-socket.js";
import type { BandwidthChange, DeadLetterEntry, PurgeRequest, RelayControl, RelayStatus } from "./control-types.js";
import { ControlClient } from "./ctl-client.js";

const SEG = "a".repeat(64);
const EMPTY_QUEUE = { scheduled: 0, inflight: 0, acked: 0, failed: 0, deadletter: 0, total: 0 };

/** A RelayControl double: in-memory state the assertions can look at (the real one is the daemon's). */
class ControlDouble implements RelayControl {
  bandwidth: BandwidthConfig = { bytes_per_second: 0, daily_quota_bytes: 0, quota_reset_utc: "00:00" };
  deadletters: DeadLetterEntry[] = [{ segment_id: SEG, peer_id: "edge-b", kind: "data", size: 3, attempts: 5, first_queued_at: "2026-01-01T00:00:00Z", last_updated_at: "2026-01-01T00:01:00Z", last_error: { code: "RELAY_PEER_UNREACHABLE", message: "refused" } }];
  enqueued: { bytes: Uint8Array; kind: SegmentKind }[] = [];
  status(): Promise<RelayStatus> {
    return Promise.resolve({
      enabled: true, node_id: "edge-a", success_condition: "one_peer", workers: 4, queue: { ...EMPTY_QUEUE, deadletter: this.deadletters.length, total: this.deadletters.length }, peers: [],
      bandwidth: { ...this.bandwidth, unlimited: true, available_tokens: 0, daily_used_bytes: 0, quota_resets_at: "2026-01-02T00:00:00Z", throttle_count: 0, quota_drop_count: 0 },
      last_error: null, refused_peers: [], store: { used_bytes: 0, ceiling_bytes: 1, segments: 0, evictions: { count: 0, bytes: 0, by_reason: { lru_ceiling: 0, delivered_evict_on_relay: 0, purged: 0, deadletter_retention: 0 } } },
      config: { source: "/x/edge.toml", loaded_at: "2026-01-01T00:00:00Z", config_reload_error: null, restart_required: [] }, queried_at: "2026-01-01T00:00:00Z",
    });
  }
  config(): never {
    throw new Error("not used here");
  }
  setBandwidth(change: BandwidthChange) {
    this.bandwidth = { ...this.bandwidth, ...change };
    return Promise.resolve({ applied: true as const, bandwidth: this.bandwidth, persisted: false as const });
  }
  deadletterList(limit: number) {
    return Promise.resolve(this.deadletters.slice(0, limit));
  }
  #find(seg: string, peer: string): DeadLetterEntry {
    const d = this.deadletters.find((x) => x.segment_id === seg && x.peer_id === peer);
    if (!d) throw new EdgeError("DEADLETTER_NOT_FOUND", `no dead letter for segment ${seg} and peer ${peer}`);
    return d;
  }
  deadletterInspect(seg: string, peer: string) {
    return Promise.resolve({ ...this.#find(seg, peer), state: "deadletter" as const, history: [], segment_present: true });
  }
  deadletterRetry(seg: string, peer: string) {
    this.#find(seg, peer);
    this.deadletters = this.deadletters.filter((x) => x.segment_id !== seg || x.peer_id !== peer);
    return Promise.resolve({ segment_id: seg, peer_id: peer, state: "scheduled" as const });
  }
  deadletterPurge(req: PurgeRequest) {
    const matched = this.deadletters.filter((d) => (req.segment_id === undefined || d.segment_id === req.segment_id) && (req.peer_id === undefined || d.peer_id === req.peer_id));
    if (req.force) this.deadletters = this.deadletters.filter((d) => !matched.includes(d));
    return Promise.resolve({ dry_run: !req.force, matched: matched.map((d) => ({ segment_id: d.segment_id, peer_id: d.peer_id })), purged: req.force ? matched.length : 0 });
  }
  enqueue(bytes: Uint8Array, kind: SegmentKind) {
    this.enqueued.push({ bytes, kind });
    return Promise.resolve({ id: createHash("sha256").update(bytes).digest("hex"), size: bytes.byteLength, kind, created: true });
  }
}

describe("edged control socket", () => {
  let dir: string;
  let control: ControlDouble;
  let close: () => Promise<void>;
  let client: ControlClient;
  let sock: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "ctl-"));
    sock = join(dir, "run", "ctl.sock");
    control = new ControlDouble();
    const app = await createControlServer({ control, maxSegmentBytes: 1024 });
    const unlink = await listenControlSocket(app, sock);
    close = async () => {
      await app.close();
      await unlink();
    };
    client = new ControlClient({ socketPath: sock });
  });
  afterEach(async () => {
    await close();
    await rm(dir, { recursive: true, force: true });
  });

  it("serves the socket with mode 0600 in a directory it created with mode 0700", async () => {
    expect((await stat(sock)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, "run"))).mode & 0o777).toBe(0o700);
  });

  it("answers status, bandwidth changes (applied=true), dead-letter operations and enqueues as JSON", async () => {
    expect((await client.status()).queue.deadletter).toBe(1);
    const applied = await client.setBandwidth({ bytes_per_second: 2048 });
    expect(applied).toEqual({ applied: true, bandwidth: { bytes_per_second: 2048, daily_quota_bytes: 0, quota_reset_utc: "00:00" }, persisted: false });
    expect(await client.deadletterList(10)).toHaveLength(1);
    expect((await client.deadletterInspect(SEG, "edge-b")).state).toBe("deadletter");
    const dry = await client.deadletterPurge({ peer_id: "edge-b", force: false });
    expect(dry).toMatchObject({ dry_run: true, purged: 0 });
    expect(control.deadletters).toHaveLength(1);
    expect(await client.deadletterRetry(SEG, "edge-b")).toEqual({ segment_id: SEG, peer_id: "edge-b", state: "scheduled" });
    const info = await client.enqueue(new TextEncoder().encode("hello"), "data");
    expect(info).toMatchObject({ size: 5, kind: "data", id: createHash("sha256").update("hello").digest("hex") });
    expect(Buffer.from(control.enqueued[0]?.bytes ?? []).toString()).toBe("hello");
  });

  it("turns a domain error into problem details with its code (DEADLETTER_NOT_FOUND, 404)", async () => {
    const err = await client.deadletterInspect("b".repeat(64), "edge-b").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EdgeError);
    expect((err as EdgeError).code).toBe("DEADLETTER_NOT_FOUND");
    expect((err as EdgeError).details.status).toBe(404);
  });

  it("refuses invalid requests before they reach the relay (bad bandwidth, bad ids, oversized segment)", async () => {
    const bad = await client.setBandwidth({ bytes_per_second: -1 }).catch((e: unknown) => e);
    expect((bad as EdgeError).details.remote_code).toBe("REQUEST_INVALID");
    const badTime = await client.setBandwidth({ quota_reset_utc: "25:00" }).catch((e: unknown) => e);
    expect((badTime as EdgeError).details.remote_code).toBe("REQUEST_INVALID");
    expect(control.bandwidth.bytes_per_second).toBe(0);
    const badId = await client.deadletterRetry("../../etc", "edge-b").catch((e: unknown) => e);
    expect((badId as EdgeError).details.status).toBe(400);
    const big = await client.enqueue(new Uint8Array(2048)).catch((e: unknown) => e);
    expect((big as EdgeError).details.remote_code).toBe("REQUEST_TOO_LARGE");
    expect(control.enqueued).toHaveLength(0);
  });

  it("a second server on a live socket is CONTROL_SOCKET_IN_USE", async () => {
    const app2 = await createControlServer({ control, maxSegmentBytes: 1024 });
    await expect(listenControlSocket(app2, sock)).rejects.toMatchObject({ code: "CONTROL_SOCKET_IN_USE" });
    await app2.close();
    expect((await client.status()).node_id).toBe("edge-a");
  });

  it("replaces the stale socket file of a killed edged (nobody answers on it)", async () => {
    const stale = join(dir, "stale.sock");
    // A process that binds the socket and dies by SIGKILL leaves the file behind, with no listener.
    const r = spawnSync(process.execPath, ["-e", `require("node:net").createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, "SIGKILL"))`]);
    expect(r.signal).toBe("SIGKILL");
    expect((await lstat(stale)).isSocket()).toBe(true);
    const app2 = await createControlServer({ control, maxSegmentBytes: 1024 });
    const unlink = await listenControlSocket(app2, stale);
    expect((await new ControlClient({ socketPath: stale }).status()).node_id).toBe("edge-a");
    await app2.close();
    await unlink();
  });

  it("refuses to replace a file that is not a socket", async () => {
    const f = join(dir, "plain");
    await writeFile(f, "x");
    const app2 = await createControlServer({ control, maxSegmentBytes: 1024 });
    await expect(listenControlSocket(app2, f)).rejects.toMatchObject({ code: "CONTROL_SOCKET_IN_USE" });
    await app2.close();
  });

  it("a missing daemon is CONTROL_SOCKET_UNAVAILABLE naming the socket", async () => {
    const c = new ControlClient({ socketPath: join(dir, "nobody.sock") });
    const err = await c.status().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "CONTROL_SOCKET_UNAVAILABLE" });
    expect((err as Error).message).toContain("nobody.sock");
  });
});
