/**
 * A RelayControl double for the control socket and edgectl tests: in-memory
 * state the assertions can look at. The real implementation is the daemon's
 * (src/edge/daemon/relay-control.ts); this one only stands in for the relay
 * behind the socket, never for the socket, the client or the CLI under test.
 */
import { createHash } from "node:crypto";
import { EdgeError } from "../../src/edge/index.js";
import { zeroEvictionCounts } from "../../src/edge/daemon/control-types.js";
import type { BandwidthChange, BandwidthConfig, BootStatusView, DeadLetterEntry, PurgeRequest, RelayConfigView, RelayControl, RelayStatusView, SegmentKind, StoreVerifyReport } from "../../src/edge/index.js";

export const SEG = "a".repeat(64);
const EMPTY_QUEUE = { scheduled: 0, inflight: 0, acked: 0, failed: 0, deadletter: 0, total: 0 };

/** A RelayControl double: in-memory state the assertions can look at (the real one is the daemon's). */
export class ControlDouble implements RelayControl {
  bandwidth: BandwidthConfig = { bytes_per_second: 0, daily_quota_bytes: 0, quota_reset_utc: "00:00" };
  deadletters: DeadLetterEntry[] = [{ segment_id: SEG, peer_id: "edge-b", kind: "data", size: 3, attempts: 5, first_queued_at: "2026-01-01T00:00:00Z", last_updated_at: "2026-01-01T00:01:00Z", last_error: { code: "RELAY_PEER_UNREACHABLE", message: "refused" } }];
  enqueued: { bytes: Uint8Array; kind: SegmentKind }[] = [];
  /** What the daemon reads from the state root's boot files (src/edge/daemon/boot-status.ts). */
  boot: BootStatusView = {
    boot_epoch: 2, os_fingerprint: `blake3:${"c".repeat(64)}`, captured_at: "2026-01-01T00:00:00Z", error: null,
    last_reconstruction: { outcome: "completed", epoch: 2, at: "2026-01-01T00:00:00Z", previous_fingerprint: `blake3:${"b".repeat(64)}`, new_fingerprint: `blake3:${"c".repeat(64)}`, runtime_manifest_digest: null },
  };
  status(): Promise<RelayStatusView> {
    return Promise.resolve({
      enabled: true, node_id: "edge-a", success_condition: "one_peer", workers: 4, queue: { ...EMPTY_QUEUE, deadletter: this.deadletters.length, total: this.deadletters.length }, peers: [],
      bandwidth: { ...this.bandwidth, unlimited: true, available_tokens: 0, daily_used_bytes: 0, quota_resets_at: "2026-01-02T00:00:00Z", throttle_count: 0, quota_drop_count: 0 },
      last_error: null, refused_peers: [], inbox: { rejected: [], rejected_counts: [] }, peer_settlements: [], store: { used_bytes: 0, disk_bytes: 0, ceiling_bytes: 1, segments: 0, evictions: { count: 0, bytes: 0, by_reason: zeroEvictionCounts() } },
      config: { source: "/x/edge.toml", loaded_at: "2026-01-01T00:00:00Z", config_reload_error: null, restart_required: [] }, boot: this.boot, queried_at: "2026-01-01T00:00:00Z",
    });
  }
  config(): Promise<RelayConfigView> {
    return Promise.resolve({
      source: "/x/edge.toml", node_id: "edge-a", state_root: "/x/state", listen: "127.0.0.1:7443", enabled: true, success_condition: "one_peer", worker_count: 4,
      dial_timeout_ms: 5000, ack_timeout_ms: 30000, max_segment_bytes: 1024, evict_on_relay: false, relay_activated_release: true, activate_relayed_releases: true,
      retry: { max_retry: 5, backoff_initial_ms: 500, backoff_max_ms: 30000, jitter: 0.2 }, storage: { ceiling_bytes: 1, deadletter_retention_ms: 1 },
      bandwidth: this.bandwidth, peers: [{ id: "edge-b", address: "127.0.0.1:7444" }], config_reload_error: null, restart_required: [],
    });
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
  storageVerify(): Promise<StoreVerifyReport> {
    return Promise.resolve({ checked: 0, bytes: 0, removed: [] });
  }
}

