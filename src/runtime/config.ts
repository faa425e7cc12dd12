import { dirname, resolve } from "node:path";
import { z } from "zod";
import { loadConfigFile } from "../lib/index.js";
import type { FieldProblem } from "../lib/index.js";
import { RuntimeError } from "./errors.js";
import { DEFAULT_ALLOWED_DOMAINS } from "./tools/index.js";
import { parseUpstreamConfigs, upstreamSchema } from "./upstream.js";
import type { UpstreamConfig } from "./upstream.js";
import type { DecisionLogMode } from "./wal-sink.js";

/** Runtime configuration (`--config runtime.toml` or `.json`); flags override file values. */
export interface RuntimeConfig {
  /** The agent's identity: the policy principal `Agent::"<agent_id>"`. Never taken from a request. */
  agentId: string;
  /** Facts about this node, offered to policy as `context.node`. */
  node: Record<string, string>;
  /** Hosts `tool.http_get` may reach (exact, or `*.suffix`). */
  allowedDomains: string[];
  /** Let allow-listed host names resolve to private/loopback/link-local addresses (default false: refused). */
  allowPrivateNetworks: boolean;
  upstreams: UpstreamConfig[];
  /** "durable" (default): a decision event is on disk before the tool runs; "async": it follows (see wal-sink.ts). */
  decisionLog: DecisionLogMode;
  /** Where the runtime's own exporter drains the WAL; none configured: the WAL only fills (drain it with `autonomy telemetry drain`). */
  telemetry: TelemetryConfig;
  /** Serve HTTPS: PEM certificate and private key files (absolute, or relative to the config file). Needed to listen outside loopback. */
  tls?: { cert: string; key: string };
}

export interface TelemetryConfig {
  otlpUrl?: string;
  /** gzip each OTLP request; default from OTEL_EXPORTER_OTLP_COMPRESSION, else none. */
  otlpCompression?: "gzip" | "none";
  controlPlaneUrl?: string;
  /** OTLP service.name / control-plane node_id; default node.node_id, else the host name. */
  nodeId?: string;
  /** Seal WAL segments at this size (bytes), so exported frames can be reclaimed; default 16 MiB; 0 = seed-exact mode (never seal). */
  segmentBytes?: number;
}

const httpUrl = z.string().url().refine((u) => /^https?:\/\//.test(u), "must be an http:// or https:// URL");

const fileSchema = z.strictObject({
  agent_id: z.string().regex(/^[A-Za-z0-9._:@-]{1,128}$/).optional(),
  node: z.record(z.string(), z.string()).optional(),
  allowed_domains: z.array(z.string().min(1)).optional(),
  allow_private_networks: z.boolean().optional(),
  upstreams: z.array(upstreamSchema).optional(),
  decision_log: z.enum(["durable", "async"]).optional(),
  tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
  telemetry: z.strictObject({
    otlp_url: httpUrl.optional(),
    otlp_compression: z.enum(["gzip", "none"]).optional(),
    control_plane_url: httpUrl.optional(),
    node_id: z.string().min(1).max(256).optional(),
    // 0 = seed-exact mode (never seal; docs/wal.md "On-disk modes"); otherwise at least 4 KiB.
    segment_bytes: z.number().int().refine((n) => n === 0 || n >= 4096, "must be 0 (seed-exact: never seal) or at least 4096").optional(),
  }).optional(),
});

export const DEFAULT_RUNTIME_CONFIG: Readonly<RuntimeConfig> = Object.freeze({
  agentId: "agent",
  node: {},
  allowedDomains: [...DEFAULT_ALLOWED_DOMAINS],
  allowPrivateNetworks: false,
  upstreams: [],
  decisionLog: "durable",
  telemetry: {},
});

/** A fresh, mutable copy of the defaults (so callers never share arrays with {@link DEFAULT_RUNTIME_CONFIG}). */
export function defaultRuntimeConfig(): RuntimeConfig {
  return { ...DEFAULT_RUNTIME_CONFIG, node: {}, allowedDomains: [...DEFAULT_RUNTIME_CONFIG.allowedDomains], upstreams: [], telemetry: {} };
}

const configFileOptions = {
  what: "runtime config",
  fail: (message: string, o: { cause?: unknown; fields?: FieldProblem[] }) =>
    new RuntimeError("RUNTIME_CONFIG_INVALID", message, { ...(o.cause !== undefined ? { cause: o.cause } : {}), ...(o.fields ? { details: { fields: o.fields } } : {}) }),
};

/**
 * Reads and validates a runtime config file (TOML, or JSON by its suffix) and
 * merges the defaults; every bad key is named as TOML spells it
 * (`[telemetry] segment_bytes: …`).
 */
export async function readRuntimeConfig(path: string): Promise<RuntimeConfig> {
  const file = await loadConfigFile(path, fileSchema, configFileOptions);
  const d = defaultRuntimeConfig();
  return {
    agentId: file.agent_id ?? d.agentId,
    node: file.node ?? d.node,
    allowedDomains: file.allowed_domains ?? d.allowedDomains,
    allowPrivateNetworks: file.allow_private_networks ?? d.allowPrivateNetworks,
    upstreams: parseUpstreamConfigs(file.upstreams ?? d.upstreams),
    decisionLog: file.decision_log ?? d.decisionLog,
    telemetry: telemetryConfig(file.telemetry ?? {}),
    // Relative to the config file, so a config and its certificate can move together.
    ...(file.tls ? { tls: { cert: resolve(dirname(path), file.tls.cert), key: resolve(dirname(path), file.tls.key) } } : {}),
  };
}

/** What command-line flags may override in the runtime config (each replaces the file's value). */
export interface RuntimeConfigOverrides {
  agentId?: string;
  decisionLog?: DecisionLogMode;
  /** Replaces `[telemetry] otlp_url` only; the other telemetry keys stay. */
  otlpUrl?: string;
  allowedDomains?: string[];
  /** Replaces `[tls]` (both files: `--tls-cert` and `--tls-key` come together). */
  tls?: { cert: string; key: string };
}

/**
 * The runtime config in force: the file's values (or the defaults without a
 * file), then the overrides. The one place defaults and overrides are merged.
 */
export async function resolveRuntimeConfig(file: string | undefined, overrides: RuntimeConfigOverrides = {}): Promise<RuntimeConfig> {
  const base = file !== undefined ? await readRuntimeConfig(file) : defaultRuntimeConfig();
  return {
    ...base,
    ...(overrides.agentId !== undefined ? { agentId: overrides.agentId } : {}),
    ...(overrides.decisionLog !== undefined ? { decisionLog: overrides.decisionLog } : {}),
    ...(overrides.otlpUrl !== undefined ? { telemetry: { ...base.telemetry, otlpUrl: overrides.otlpUrl } } : {}),
    ...(overrides.allowedDomains !== undefined ? { allowedDomains: overrides.allowedDomains } : {}),
    ...(overrides.tls !== undefined ? { tls: overrides.tls } : {}),
  };
}

function telemetryConfig(t: { otlp_url?: string | undefined; otlp_compression?: "gzip" | "none" | undefined; control_plane_url?: string | undefined; node_id?: string | undefined; segment_bytes?: number | undefined }): TelemetryConfig {
  return {
    ...(t.otlp_url !== undefined ? { otlpUrl: t.otlp_url } : {}),
    ...(t.otlp_compression !== undefined ? { otlpCompression: t.otlp_compression } : {}),
    ...(t.control_plane_url !== undefined ? { controlPlaneUrl: t.control_plane_url } : {}),
    ...(t.node_id !== undefined ? { nodeId: t.node_id } : {}),
    ...(t.segment_bytes !== undefined ? { segmentBytes: t.segment_bytes } : {}),
  };
}
