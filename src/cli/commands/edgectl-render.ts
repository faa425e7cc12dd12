import type { BootStatusView, DeadLetterDetail, DeadLetterEntry, DeadLetterPurgeResult, QueueCounts, RelayConfigView, RelayStatusView } from "../../edge/index.js";

/** Text renderings of edgectl's results (the --json document is the result itself). */

function queueLine(q: QueueCounts): string {
  return `scheduled ${q.scheduled}  inflight ${q.inflight}  acked ${q.acked}  failed ${q.failed}  deadletter ${q.deadletter}  total ${q.total}`;
}

function rate(n: number, unit: string): string {
  return n === 0 ? "unlimited" : `${n} ${unit}`;
}

/** A duration in the unit edge.toml most likely gave it (deadletter_retention_hours): whole hours, else ms. */
export function durationText(ms: number): string {
  const h = ms / 3_600_000;
  return Number.isInteger(h) ? `${h} h` : `${ms} ms`;
}

/** One bandwidth line, as `config get` and `set-bandwidth` print it (0 = unlimited in both). */
export function bandwidthText(b: { bytes_per_second: number; daily_quota_bytes: number; quota_reset_utc: string }): string {
  return `rate ${rate(b.bytes_per_second, "B/s")}  daily quota ${rate(b.daily_quota_bytes, "B")}  reset ${b.quota_reset_utc} UTC`;
}

/** The boot epoch and the last OS reconstruction (what an operator checks after an OS replacement). */
export function bootText(b: BootStatusView): string[] {
  if (b.error !== null) return [`boot: unreadable: ${b.error}`];
  const head = b.boot_epoch === null ? "boot: no boot epoch recorded yet (edged precheck has not run on this state root)" : `boot: epoch ${b.boot_epoch}  OS fingerprint ${b.os_fingerprint ?? "?"}  since ${b.captured_at ?? "?"}`;
  const r = b.last_reconstruction;
  const last = r === null
    ? "  last reconstruction: none"
    : `  last reconstruction: ${r.outcome} at ${r.at}, to epoch ${r.epoch} (OS ${r.previous_fingerprint} → ${r.new_fingerprint})${r.runtime_manifest_digest ? `, runtime ${r.runtime_manifest_digest}` : ""}`;
  return [head, last];
}

export function statusText(s: RelayStatusView): string {
  if (!s.enabled) return ["relay: disabled", ...bootText(s.boot), `queried_at: ${s.queried_at}`].join("\n");
  const b = s.bandwidth;
  const lines = [
    `relay: enabled  node ${s.node_id}  success ${s.success_condition}  workers ${s.workers}`,
    `queue: ${queueLine(s.queue)}`,
    ...s.peers.map((p) => `  peer ${p.peer_id} (${p.address}): ${queueLine(p.queue)}${p.last_error ? `\n    last error: ${p.last_error.code}: ${p.last_error.message}` : ""}`),
    `bandwidth: rate ${rate(b.bytes_per_second, "B/s")}  tokens ${Math.floor(b.available_tokens)}  daily used ${b.daily_used_bytes} of ${rate(b.daily_quota_bytes, "B")}  quota resets ${b.quota_resets_at}`,
    `  throttled ${b.throttle_count}  quota drops ${b.quota_drop_count}`,
    `last error: ${s.last_error ? `${s.last_error.code}: ${s.last_error.message}${s.last_error.peer_id ? ` (peer ${s.last_error.peer_id})` : ""} at ${s.last_error.at}` : "none"}`,
    `refused peers: ${s.refused_peers.length === 0 ? "none" : ""}`,
    ...s.refused_peers.map((r) => `  ${r.direction} ${r.peer}: ${r.reason} ×${r.count}, last ${r.at}: ${r.detail}`),
    ...inboxLines(s),
    ...s.peer_settlements.map((p) => `removed peer ${p.peer_id}: ${p.count} deliveries settled (peer_removed; ${p.unacked} never acknowledged) at ${p.at}`),
    `store: ${s.store.used_bytes} of ${s.store.ceiling_bytes} bytes in ${s.store.segments} segments; evicted ${s.store.evictions.count} (${s.store.evictions.bytes} bytes)` +
      Object.entries(s.store.evictions.by_reason).filter(([, n]) => n > 0).map(([k, n]) => ` ${k} ${n}`).join(""),
    `config: ${s.config.source} loaded ${s.config.loaded_at}`,
    ...(s.config.config_reload_error ? [`  config_reload_error: ${s.config.config_reload_error} (the running config was kept)`] : []),
    ...(s.config.restart_required.length > 0 ? [`  restart required for: ${s.config.restart_required.join(", ")}`] : []),
    ...bootText(s.boot),
    `queried_at: ${s.queried_at}`,
  ];
  return lines.join("\n");
}

/** Received segments this node did not apply: refused (exit 4) or abandoned after repeated failures. */
function inboxLines(s: RelayStatusView): string[] {
  const total = s.inbox.rejected_counts.reduce((n, c) => n + c.count, 0);
  if (total === 0) return ["inbox: every received segment applied"];
  return [
    `inbox: ${total} received segment(s) not applied: ${s.inbox.rejected_counts.map((c) => `${c.kind} ${c.outcome} ${c.code} ×${c.count}`).join(", ")}`,
    ...s.inbox.rejected.map((r) => `  #${r.seq} ${r.kind} ${r.segment_id} from ${r.from}: ${r.outcome} ${r.code}${r.cause_code ? ` (${r.cause_code})` : ""}` +
      `${r.sequence != null ? ` sequence ${r.sequence}` : ""}${r.statement_digest ? ` statement ${r.statement_digest}` : ""} at ${r.at}`),
  ];
}

export function configText(c: RelayConfigView): string {
  return [
    `config: ${c.source}`,
    `node: ${c.node_id}  state root ${c.state_root}  listen ${c.listen ?? "(send only)"}`,
    `relay: ${c.enabled ? "enabled" : "disabled"}  success ${c.success_condition}  workers ${c.worker_count}  max segment ${c.max_segment_bytes} B  evict_on_relay ${c.evict_on_relay}`,
    `  timeouts: dial ${c.dial_timeout_ms} ms  ack ${c.ack_timeout_ms} ms`,
    `  retry: max ${c.retry.max_retry}  backoff ${c.retry.backoff_initial_ms}..${c.retry.backoff_max_ms} ms  jitter ${c.retry.jitter}`,
    `  releases: relay activated ${c.relay_activated_release}  activate relayed ${c.activate_relayed_releases}`,
    `storage: ceiling ${c.storage.ceiling_bytes} B  dead-letter retention ${durationText(c.storage.deadletter_retention_ms)}`,
    `bandwidth: ${bandwidthText(c.bandwidth)}`,
    `peers: ${c.peers.length === 0 ? "none" : c.peers.map((p) => `${p.id} (${p.address})`).join(", ")}`,
    ...(c.config_reload_error ? [`config_reload_error: ${c.config_reload_error}`] : []),
    ...(c.restart_required.length > 0 ? [`restart required for: ${c.restart_required.join(", ")}`] : []),
  ].join("\n");
}

export function deadletterListText(list: readonly DeadLetterEntry[]): string {
  if (list.length === 0) return "no dead letters";
  return list.map((d) => `${d.segment_id} ${d.peer_id}  ${d.kind} ${d.size} B  attempts ${d.attempts}  last ${d.last_updated_at}${d.last_error ? `  ${d.last_error.code}: ${d.last_error.message}` : ""}`).join("\n");
}

export function deadletterDetailText(d: DeadLetterDetail): string {
  return [
    `segment ${d.segment_id} → peer ${d.peer_id}: ${d.state}`,
    `  ${d.kind}, ${d.size} bytes, ${d.segment_present ? "bytes still in the store" : "bytes no longer in the store (a retry cannot deliver it)"}`,
    `  attempts ${d.attempts}  first queued ${d.first_queued_at}  last updated ${d.last_updated_at}`,
    ...(d.last_error ? [`  last error: ${d.last_error.code}: ${d.last_error.message}`] : []),
    ...d.history.map((h) => `  attempt ${h.started} → ${h.completed ?? "(unfinished)"}: ${h.outcome}${h.error ? ` ${h.error.code}: ${h.error.message}` : ""}`),
  ].join("\n");
}

export function purgeText(p: DeadLetterPurgeResult): string {
  const what = p.matched.map((m) => `  ${m.segment_id} ${m.peer_id}`);
  if (p.dry_run) return [`dry run: ${p.matched.length} dead letter(s) would be purged (pass --force to purge)`, ...what].join("\n");
  return [`purged ${p.purged} dead letter(s)`, ...what].join("\n");
}
