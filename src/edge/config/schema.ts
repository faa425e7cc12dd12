import { z } from "zod";

/**
 * `edge.toml`, version 1: the file schema (snake_case, as the file spells it).
 * The loader (src/edge/config/load.ts) parses with smol-toml, validates with
 * this schema, applies defaults and resolves relative paths against the
 * config file's directory. `autonomy config migrate` upgrades older versions.
 *
 * ```toml
 * config_version = 1
 * [node]
 * id = "edge-a"
 * state_root = "/var/lib/autonomy"
 * [transport]                       # this node's mTLS identity for the relay
 * cert_file = "certs/edge-a.crt"
 * key_file = "certs/edge-a.key"
 * ca_file = "certs/ca.crt"
 * listen = "127.0.0.1:7443"         # the relay receiver; omit to only send
 * [relay]
 * success_condition = "one_peer"    # or "all_peers"
 * [relay.retry]
 * max_retry = 5
 * [bandwidth]
 * bytes_per_second = 0              # 0 = unlimited
 * daily_quota_bytes = 0             # 0 = unlimited
 * [[peers]]
 * id = "edge-b"
 * address = "127.0.0.1:7444"
 * ```
 */
export const CONFIG_VERSION = 1;

const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/;
const HHMM = /^([01][0-9]|2[0-3]):[0-5][0-9]$/;

const nodeId = z.string().regex(NODE_ID, "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit");
// The port bound is checked only on a host:port (one problem per value, not "must be host:port" and a port complaint).
const hostPort = z.string().regex(HOST_PORT, "must be host:port").refine((s) => !HOST_PORT.test(s) || Number(s.slice(s.lastIndexOf(":") + 1)) <= 65535, "port must be at most 65535");
const path = z.string().min(1, "must be a path");
const nonNegInt = z.number().int().min(0);
const posInt = z.number().int().min(1);

export const edgeFileSchema = z.strictObject({
  config_version: z.literal(CONFIG_VERSION),
  node: z.strictObject({
    id: nodeId,
    state_root: path,
  }),
  transport: z.strictObject({
    cert_file: path,
    key_file: path,
    ca_file: path,
    listen: hostPort.optional(),
  }),
  relay: z.strictObject({
    enabled: z.boolean().optional(),
    success_condition: z.enum(["one_peer", "all_peers"]).optional(),
    worker_count: posInt.max(64).optional(),
    dial_timeout_seconds: z.number().positive().max(600).optional(),
    ack_timeout_seconds: z.number().positive().max(3600).optional(),
    max_segment_bytes: posInt.max(1024 * 1024 * 1024).optional(),
    evict_on_relay: z.boolean().optional(),
    /** Relay the node's activated release to every peer when it changes ("seed once, update everywhere"). */
    relay_activated_release: z.boolean().optional(),
    /** Activate releases that peers relay to this node (verified under the node's own trust root and release rules). */
    activate_relayed_releases: z.boolean().optional(),
    retry: z.strictObject({
      max_retry: posInt.max(1000).optional(),
      backoff_initial_ms: posInt.optional(),
      backoff_max_ms: posInt.optional(),
      jitter: z.number().min(0).max(1).optional(),
    }).optional(),
  }).optional(),
  scheduler: z.strictObject({
    schedule_interval_seconds: z.number().positive().max(3600).optional(),
    max_concurrent_relays: posInt.max(1024).optional(),
    max_segments_per_scheduling_round: posInt.max(100000).optional(),
  }).optional(),
  storage: z.strictObject({
    ceiling_bytes: posInt.optional(),
    deadletter_retention_hours: z.number().positive().optional(),
  }).optional(),
  bandwidth: z.strictObject({
    bytes_per_second: nonNegInt.optional(),
    daily_quota_bytes: nonNegInt.optional(),
    quota_reset_utc: z.string().regex(HHMM, "must be HH:MM (UTC)").optional(),
  }).optional(),
  peers: z.array(z.strictObject({ id: nodeId, address: hostPort })).optional(),
  bootstrap: z.strictObject({
    /** Where `edged precheck` reinstalls the runtime from the verified copy in the state root. */
    runtime_install_dir: path.optional(),
    /** OS identity sources (tests point them at files they control to simulate an OS replacement). */
    os_release_file: path.optional(),
    kernel_release_file: path.optional(),
    machine_arch: z.string().min(1).optional(),
  }).optional(),
});
export type EdgeFile = z.output<typeof edgeFileSchema>;

/** The resolved configuration every part of the daemon reads: defaults applied, paths absolute. */
export interface EdgeConfig {
  /** The file it came from (absolute), for reloads and messages. */
  source: string;
  node: { id: string; stateRoot: string };
  transport: { certFile: string; keyFile: string; caFile: string; listen?: string };
  relay: {
    enabled: boolean;
    successCondition: "one_peer" | "all_peers";
    workerCount: number;
    dialTimeoutMs: number;
    ackTimeoutMs: number;
    maxSegmentBytes: number;
    evictOnRelay: boolean;
    relayActivatedRelease: boolean;
    activateRelayedReleases: boolean;
    retry: { maxRetry: number; backoffInitialMs: number; backoffMaxMs: number; jitter: number };
  };
  scheduler: { intervalMs: number; maxConcurrentRelays: number; maxSegmentsPerRound: number };
  storage: { ceilingBytes: number; deadletterRetentionMs: number };
  bandwidth: { bytes_per_second: number; daily_quota_bytes: number; quota_reset_utc: string };
  peers: { id: string; address: string }[];
  bootstrap: { runtimeInstallDir?: string; osReleaseFile: string; kernelReleaseFile: string; machineArch?: string };
}

export const EDGE_DEFAULTS = {
  relay: {
    enabled: true, successCondition: "one_peer", workerCount: 4, dialTimeoutMs: 5_000, ackTimeoutMs: 30_000,
    maxSegmentBytes: 64 * 1024 * 1024, evictOnRelay: false, relayActivatedRelease: true, activateRelayedReleases: true,
    retry: { maxRetry: 5, backoffInitialMs: 500, backoffMaxMs: 30_000, jitter: 0.2 },
  },
  scheduler: { intervalMs: 1_000, maxConcurrentRelays: 8, maxSegmentsPerRound: 100 },
  storage: { ceilingBytes: 1024 * 1024 * 1024, deadletterRetentionMs: 7 * 24 * 3600 * 1000 },
  bandwidth: { bytes_per_second: 0, daily_quota_bytes: 0, quota_reset_utc: "00:00" },
  bootstrap: { osReleaseFile: "/etc/os-release", kernelReleaseFile: "/proc/sys/kernel/osrelease" },
} as const;
