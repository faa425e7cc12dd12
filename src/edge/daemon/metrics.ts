import { Counter, Gauge, Registry } from "prom-client";
import { DELIVERY_STATES } from "../types.js";
import { zeroEvictionCounts } from "./control-types.js";
import type { EngineStats, RelayParts } from "./ports.js";
import type { RunningConfig } from "./running-config.js";
import type { InboxStatus } from "./control-types.js";

/** Sets a counter to a monotonic total read from its owner (prom-client counters only go up through inc). */
function setTotal(c: Counter<string>, value: number, labels?: Record<string, string>): void {
  if (labels) {
    c.remove(labels);
    c.inc(labels, value);
  } else {
    c.reset();
    c.inc(value);
  }
}

/**
 * edged's Prometheus metrics, read from the relay's parts at scrape time (no
 * bookkeeping on the delivery path): queue depth per ledger state and peer,
 * delivered/failed/dead-lettered deliveries and bytes sent, throttles and
 * quota drops, refused peers, store usage and evictions, and whether the last
 * config reload failed.
 */
export function createEdgeMetrics(parts: RelayParts, config: RunningConfig, inbox: () => InboxStatus = () => ({ rejected: [], rejected_counts: [] })): Registry {
  const registry = new Registry();
  const r = [registry];
  new Gauge({
    name: "edged_relay_queue_depth", help: "Deliveries (segment, peer) per ledger state and peer", labelNames: ["state", "peer"], registers: r,
    collect() {
      this.reset();
      const q = parts.engine.queue();
      for (const p of config.current.peers) {
        const pq = q.peers[p.id]?.queue;
        for (const s of DELIVERY_STATES) this.set({ state: s, peer: p.id }, pq?.[s] ?? 0);
      }
    },
  });
  const stats = (name: string, help: string, key: keyof EngineStats): void => {
    new Counter({ name, help, registers: r, collect() { setTotal(this, parts.engine.stats()[key]); } });
  };
  stats("edged_relay_delivered_total", "Segments whose success condition was met (durable, across restarts)", "delivered_total");
  stats("edged_relay_pushes_acked_total", "Pushes a peer acknowledged since edged started", "pushes_acked_total");
  stats("edged_relay_failed_attempts_total", "Pushes that failed (retried with backoff or dead-lettered) since edged started", "failed_attempts_total");
  stats("edged_relay_sent_bytes_total", "Segment bytes peers acknowledged since edged started", "bytes_sent_total");
  new Counter({ name: "edged_bandwidth_throttled_total", help: "Sends that waited for bandwidth tokens", registers: r, collect() { setTotal(this, parts.bandwidth.snapshot().throttle_count); } });
  new Counter({ name: "edged_bandwidth_quota_drops_total", help: "Sends refused because the daily quota was used up (retried after the reset)", registers: r, collect() { setTotal(this, parts.bandwidth.snapshot().quota_drop_count); } });
  new Gauge({ name: "edged_bandwidth_daily_used_bytes", help: "Bytes counted against today's quota", registers: r, collect() { this.set(parts.bandwidth.snapshot().daily_used_bytes); } });
  new Gauge({ name: "edged_bandwidth_bytes_per_second", help: "Configured rate (0 = unlimited)", registers: r, collect() { this.set(parts.bandwidth.snapshot().bytes_per_second); } });
  new Gauge({ name: "edged_bandwidth_daily_quota_bytes", help: "Configured daily quota (0 = unlimited)", registers: r, collect() { this.set(parts.bandwidth.snapshot().daily_quota_bytes); } });
  new Gauge({
    name: "edged_relay_refused_peers", help: "Peers whose TLS handshake was refused, by direction and reason", labelNames: ["direction", "reason"], registers: r,
    collect() {
      this.reset();
      for (const x of parts.refused()) this.inc({ direction: x.direction, reason: x.reason });
    },
  });
  new Gauge({ name: "edged_store_used_bytes", help: "Bytes held by the segment store", registers: r, collect() { this.set(parts.store.usage().used_bytes); } });
  new Gauge({ name: "edged_store_disk_bytes", help: "Disk the segment store's files take as the ceiling counts it (whole blocks, one at least per segment)", registers: r, collect() { this.set(parts.store.usage().disk_bytes); } });
  new Gauge({ name: "edged_store_ceiling_bytes", help: "The segment store's disk ceiling", registers: r, collect() { this.set(parts.store.usage().ceiling_bytes); } });
  new Gauge({ name: "edged_store_segments", help: "Segments in the store", registers: r, collect() { this.set(parts.store.usage().segments); } });
  new Counter({
    name: "edged_store_evictions_total", help: "Segments evicted from the store, by reason", labelNames: ["reason"], registers: r,
    collect() {
      const counts = zeroEvictionCounts();
      for (const e of parts.store.evictions()) counts[e.reason] += 1;
      for (const [reason, n] of Object.entries(counts)) setTotal(this, n, { reason });
    },
  });
  new Counter({
    name: "edged_relay_releases_refused_total", help: "Relayed releases this node did not activate, by code (refused by its release rules, or abandoned: INBOX_ENTRY_ABANDONED)", labelNames: ["code"], registers: r,
    collect() {
      const byCode = new Map<string, number>();
      for (const c of inbox().rejected_counts) if (c.kind === "release") byCode.set(c.code, (byCode.get(c.code) ?? 0) + c.count);
      for (const [code, n] of byCode) setTotal(this, n, { code });
    },
  });
  new Counter({
    name: "edged_relay_inbox_passed_total", help: "Received segments the application did not apply and passed, by kind, outcome (refused | abandoned) and code", labelNames: ["kind", "outcome", "code"], registers: r,
    collect() {
      for (const c of inbox().rejected_counts) setTotal(this, c.count, { kind: c.kind, outcome: c.outcome, code: c.code });
    },
  });
  new Gauge({ name: "edged_config_reload_failed", help: "1 when the last edge.toml reload failed (the running config was kept)", registers: r, collect() { this.set(config.state().config_reload_error === null ? 0 : 1); } });
  return registry;
}
