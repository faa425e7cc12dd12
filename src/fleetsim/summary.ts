import type { VirtualDevice } from "./device.js";
import type { Traffic } from "./stats.js";
import { FAULT_KINDS } from "./spec.js";
import type { FaultKind } from "./spec.js";

/** The run's result (`--json` prints it as is). */
export interface FleetSummary {
  seed: number;
  server: string;
  channel: string;
  node_prefix: string;
  devices: number;
  elapsed_ms: number;
  /** null without --until-converged. */
  converged: boolean | null;
  latest_release_id: string | null;
  /** Devices per current release (`none`: nothing activated). */
  releases: Record<string, number>;
  /** Devices per last phase (a lifecycle phase, or enrolled / enroll_failed / offline / new). */
  phases: Record<string, number>;
  /** Node ids per fault, from the seed. */
  faults: Record<FaultKind, string[]>;
  /** Failed requests by code (`CP_REQUEST_REJECTED/<server code>`, `CP_REQUEST_FAILED`, …). */
  errors: Record<string, number>;
  requests: ReturnType<Traffic["summary"]>;
  /** Rounds a device lost to an unexpected error (a bug): should be 0; the last message is kept. */
  internal_errors: { count: number; last: string | null };
  acks: { sent: number; failed: number };
  heartbeats: { sent: number; failed: number };
  events: { sent: number; inserted: number; pending: number; dropped: number };
  memory: { rss_bytes: number; heap_used_bytes: number };
  exit_code: number;
  failure?: { code: string; message: string };
}

export interface SummaryInput {
  devices: readonly VirtualDevice[];
  traffic: Traffic;
  seed: number;
  server: string;
  channel: string;
  prefix: string;
  elapsedMs: number;
  converged: boolean | null;
  latest: string | null;
}

function count(keys: Iterable<string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of keys) out[k] = (out[k] ?? 0) + 1;
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

export function summarize(i: SummaryInput): FleetSummary {
  const ds = i.devices;
  const sum = (f: (d: VirtualDevice) => number): number => ds.reduce((a, d) => a + f(d), 0);
  const faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, ds.filter((d) => d.cfg.fault === k).map((d) => d.cfg.nodeId)])) as Record<FaultKind, string[]>;
  const mem = process.memoryUsage();
  return {
    seed: i.seed, server: i.server, channel: i.channel, node_prefix: i.prefix, devices: ds.length, elapsed_ms: Math.round(i.elapsedMs),
    converged: i.converged, latest_release_id: i.latest,
    releases: count(ds.map((d) => d.running?.release_id ?? "none")),
    phases: count(ds.map((d) => d.stage)),
    faults,
    errors: Object.fromEntries([...i.traffic.errors.entries()].sort(([a], [b]) => a.localeCompare(b))),
    requests: i.traffic.summary(),
    internal_errors: { count: sum((d) => d.stats.internal_errors), last: ds.find((d) => d.lastInternalError !== null)?.lastInternalError ?? null },
    acks: { sent: sum((d) => d.stats.acks), failed: sum((d) => d.stats.ack_failures) },
    heartbeats: { sent: sum((d) => d.stats.heartbeats), failed: sum((d) => d.stats.heartbeat_failures) },
    events: { sent: sum((d) => d.stats.events_sent), inserted: sum((d) => d.stats.events_inserted), pending: sum((d) => d.pending), dropped: sum((d) => d.stats.events_dropped) },
    memory: { rss_bytes: mem.rss, heap_used_bytes: mem.heapUsed },
    exit_code: 0,
  };
}

/** The live line: devices by current release and by last phase, requests and errors so far. */
export function progressLine(elapsedMs: number, devices: readonly VirtualDevice[], traffic: Traffic): string {
  const rel = count(devices.map((d) => d.running?.release_id ?? "none"));
  const ph = count(devices.map((d) => d.stage));
  const fmt = (r: Record<string, number>): string => Object.entries(r).map(([k, v]) => `${k} ${v}`).join(", ");
  return `${(elapsedMs / 1000).toFixed(0)}s  ${devices.length} devices | releases: ${fmt(rel)} | phases: ${fmt(ph)} | requests ${traffic.total}, transport errors ${traffic.transportErrors}`;
}
