import { mkdirSync } from "node:fs";
/**
 * Relay parts for the daemon's own tests (lock, control socket, reload,
 * metrics, shutdown): an engine, store and uplink that keep their state in
 * memory and record what the daemon asked of them. The relay's real parts
 * (src/edge/storage, src/edge/relay) have their own tests; the end-to-end
 * tests of edged use them.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { EDGE_DEFAULTS, EdgeError } from "../../src/edge/index.js";
import type { BandwidthConfig, BandwidthLimiter, BandwidthSnapshot, EdgeConfig, EvictionRecord, RefusedPeer, SegmentInfo, SegmentKind, SegmentStore } from "../../src/edge/index.js";
import type { EngineQueue, RelayEngine, RelayParts } from "../../src/edge/daemon/ports.js";

export class BandwidthRecorder implements BandwidthLimiter {
  updates: BandwidthConfig[] = [];
  throttles = 0;
  constructor(public cfg: BandwidthConfig) {}
  reserveQuota(): boolean {
    return true;
  }
  refundQuota(): void {
    // nothing is counted here
  }
  flushQuota(): Promise<void> {
    return Promise.resolve();
  }
  acquire(): Promise<void> {
    return Promise.resolve();
  }
  update(cfg: BandwidthConfig): void {
    this.updates.push({ ...cfg });
    this.cfg = { ...cfg };
  }
  snapshot(): BandwidthSnapshot {
    return { ...this.cfg, unlimited: this.cfg.bytes_per_second === 0 && this.cfg.daily_quota_bytes === 0, available_tokens: this.cfg.bytes_per_second, daily_used_bytes: 0, quota_resets_at: "2026-01-02T00:00:00.000Z", throttle_count: this.throttles, quota_drop_count: 0 };
  }
}

export class MemoryStore implements Pick<SegmentStore, "usage" | "evictions" | "list"> {
  segments = new Map<string, { info: SegmentInfo; bytes: Uint8Array }>();
  evicted: EvictionRecord[] = [];
  usage() {
    let used = 0;
    let disk = 0;
    for (const s of this.segments.values()) {
      used += s.info.size;
      disk += Math.max(4096, Math.ceil(s.info.size / 4096) * 4096);
    }
    return { used_bytes: used, disk_bytes: disk, ceiling_bytes: 1 << 20, segments: this.segments.size };
  }
  evictions(): readonly EvictionRecord[] {
    return this.evicted;
  }
  list(): SegmentInfo[] {
    return [...this.segments.values()].map((s) => s.info);
  }
}

export class EngineRecorder implements RelayEngine {
  started = 0;
  stopped: number[] = [];
  delivered = 0;
  constructor(readonly store: MemoryStore, readonly peers: readonly string[]) {}
  start(): void {
    this.started += 1;
  }
  stop(graceMs: number): Promise<void> {
    this.stopped.push(graceMs);
    return Promise.resolve();
  }
  enqueue(bytes: Uint8Array, kind: SegmentKind) {
    const id = createHash("sha256").update(bytes).digest("hex");
    const created = !this.store.segments.has(id);
    this.store.segments.set(id, { info: { id, size: bytes.byteLength, kind }, bytes });
    return Promise.resolve({ id, size: bytes.byteLength, kind, created });
  }
  queue(): EngineQueue {
    const n = this.store.segments.size;
    const q = { scheduled: n, inflight: 0, acked: 0, failed: 0, deadletter: 0, total: n };
    return { overall: { ...q, scheduled: n * this.peers.length, total: n * this.peers.length }, peers: Object.fromEntries(this.peers.map((p) => [p, { queue: { ...q }, last_error: null }])), last_error: null };
  }
  stats() {
    return { delivered_total: this.delivered, pushes_acked_total: 0, failed_attempts_total: 0, bytes_sent_total: 0 };
  }
  deadletterList() {
    return Promise.resolve([]);
  }
  deadletterInspect(seg: string, peer: string): never {
    throw new EdgeError("DEADLETTER_NOT_FOUND", `no dead letter for segment ${seg} and peer ${peer}`);
  }
  deadletterRetry(seg: string, peer: string): never {
    throw new EdgeError("DEADLETTER_NOT_FOUND", `no dead letter for segment ${seg} and peer ${peer}`);
  }
  deadletterPurge() {
    return Promise.resolve({ dry_run: true, matched: [], purged: 0 });
  }
  bandwidthChangedCalls = 0;
  bandwidthChanged(): Promise<void> {
    this.bandwidthChangedCalls += 1;
    return Promise.resolve();
  }
}

export interface RecordedParts extends RelayParts {
  bandwidth: BandwidthRecorder;
  engine: EngineRecorder;
  closed: number;
  refusals: RefusedPeer[];
}

/** A parts factory whose parts the test can inspect afterwards (the last one opened). */
export function recordingParts(): { factory: (c: EdgeConfig) => Promise<RelayParts>; last: () => RecordedParts } {
  let last: RecordedParts | undefined;
  return {
    factory: (c) => {
      const store = new MemoryStore();
      const parts: RecordedParts = {
        store: store as unknown as SegmentStore, // only the read side is used by the daemon
        bandwidth: new BandwidthRecorder({ ...c.bandwidth }),
        engine: new EngineRecorder(store, c.peers.map((p) => p.id)),
        closed: 0,
        refusals: [],
        refused: () => parts.refusals,
        close: () => {
          parts.closed += 1;
          return Promise.resolve();
        },
      };
      last = parts;
      return Promise.resolve(parts);
    },
    last: () => {
      if (!last) throw new Error("no parts opened yet");
      return last;
    },
  };
}

/** An EdgeConfig with defaults, for tests that build one without a file. */
export function testEdgeConfig(source: string, stateRoot: string, over: Partial<Pick<EdgeConfig, "bandwidth" | "peers">> = {}): EdgeConfig {
  // edged refuses a missing state root (a typo must not start an empty node): a node's root exists before it runs.
  mkdirSync(stateRoot, { recursive: true });
  return {
    source,
    node: { id: "edge-a", stateRoot },
    transport: { certFile: "/x/a.crt", keyFile: "/x/a.key", caFile: "/x/ca.crt" },
    relay: { ...EDGE_DEFAULTS.relay, retry: { ...EDGE_DEFAULTS.relay.retry } },
    scheduler: { ...EDGE_DEFAULTS.scheduler },
    storage: { ...EDGE_DEFAULTS.storage },
    bandwidth: over.bandwidth ?? { ...EDGE_DEFAULTS.bandwidth },
    peers: over.peers ?? [{ id: "edge-b", address: "127.0.0.1:7444" }],
    bootstrap: { ...EDGE_DEFAULTS.bootstrap },
  };
}

/**
 * The daemon tests' loader: the resolved EdgeConfig as JSON in the file (the
 * daemon only needs "a loader that may fail"; loadEdgeConfig and its TOML
 * rules are tested in src/edge/config).
 */
export async function loadJsonEdgeConfig(path: string): Promise<EdgeConfig> {
  const text = await readFile(path, "utf8");
  try {
    const c = JSON.parse(text) as EdgeConfig;
    if (typeof c.bandwidth.bytes_per_second !== "number" || c.bandwidth.bytes_per_second < 0) throw new Error("[bandwidth] bytes_per_second: expected a number ≥ 0");
    return c;
  } catch (e) {
    throw new EdgeError("EDGE_CONFIG_INVALID", `${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
}
