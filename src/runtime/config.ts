import { readFile } from "node:fs/promises";
import { parse as parseToml } from "smol-toml";
import { z } from "zod";
import { errnoCode, fieldProblems, formatProblems } from "../lib/index.js";
import { RuntimeError } from "./errors.js";
import { DEFAULT_ALLOWED_DOMAINS } from "./tools/index.js";
import { parseUpstreamConfigs } from "./upstream.js";
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
  upstreams: z.array(z.unknown()).optional(),
  decision_log: z.enum(["durable", "async"]).optional(),
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

/** Reads and validates a runtime config file; every bad field is named. */
export async function readRuntimeConfig(path: string): Promise<RuntimeConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new RuntimeError("RUNTIME_CONFIG_INVALID", `cannot read runtime config ${path}: ${errnoCode(e) ?? String(e)}`, { cause: e });
  }
  let doc: unknown;
  try {
    doc = path.endsWith(".json") ? JSON.parse(text) : parseToml(text);
  } catch (e) {
    throw new RuntimeError("RUNTIME_CONFIG_INVALID", `${path} is not valid ${path.endsWith(".json") ? "JSON" : "TOML"}: ${(e as Error).message.split("\n")[0] ?? ""}`, { cause: e });
  }
  const r = fileSchema.safeParse(doc);
  if (!r.success) {
    const fields = fieldProblems(r.error.issues);
    throw new RuntimeError("RUNTIME_CONFIG_INVALID", `${path}: ${formatProblems(fields)}`, { details: { fields } });
  }
  return {
    agentId: r.data.agent_id ?? DEFAULT_RUNTIME_CONFIG.agentId,
    node: r.data.node ?? {},
    allowedDomains: r.data.allowed_domains ?? [...DEFAULT_RUNTIME_CONFIG.allowedDomains],
    allowPrivateNetworks: r.data.allow_private_networks ?? false,
    upstreams: parseUpstreamConfigs(r.data.upstreams ?? []),
    decisionLog: r.data.decision_log ?? DEFAULT_RUNTIME_CONFIG.decisionLog,
    telemetry: telemetryConfig(r.data.telemetry ?? {}),
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
