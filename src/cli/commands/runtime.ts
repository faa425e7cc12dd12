import { InvalidArgumentError, Option } from "commander";
import type { Command } from "commander";
import { startRuntime, resolveRuntimeConfig } from "../../runtime/index.js";
import type { ControlPlaneOptions, RuntimeConfig } from "../../runtime/index.js";
import { parseDuration } from "../../sign/index.js";
import { loadPolicy, readNodeState } from "../../node/index.js";
import type { LivePolicyEvent, NodeState } from "../../node/index.js";
import { action } from "../run.js";
import { emit } from "../output.js";
import { parseHttpUrl, repositoryOptions } from "../common.js";
import { registerRuntimeActivate, registerRuntimeTrust } from "./runtime-node.js";
import { UsageError, messageOf, readInputFile, redactUrl } from "../../lib/index.js";
import { registerRuntimeToken } from "./runtime-token.js";

interface StateFlags {
  stateRoot: string;
  json?: boolean;
}

/** One-screen summary of the node state for operators. */
function stateText(s: NodeState): string {
  const slot = (name: string, x: NodeState["current"]): string => `${name}: ${x ? `${x.name}@${x.version} ${x.digest} (loaded ${x.loaded_at})` : "none"}`;
  return [
    slot("policy current", s.current),
    slot("policy lkg    ", s.lkg),
    activationText(s),
    `highest sequence: ${s.highest_sequence}${s.newest_issued_at ? ` (newest issued_at ${s.newest_issued_at})` : ""}`,
    ...s.equivocations.map((e) => `EQUIVOCATION at sequence ${e.sequence} (${e.at}): recorded ${e.recorded}, offered ${e.offered}`),
  ].join("\n");
}

function activationText(s: NodeState): string {
  const a = s.activation;
  if (a) return `activation: ${a.ref}\n  sequence ${a.sequence} (${a.channel}), statement ${a.statement_digest}, expires ${a.expires_at}\n  lock ${a.lock_fingerprint}, policy ${a.policy_name}@${a.policy_version}, activated ${a.activated_at}`;
  const l = s.legacy_activation;
  return l ? `activation (before release statements): ${l.ref}\n  sequence ${l.sequence}, lock ${l.lock_fingerprint}, activated ${l.activated_at}` : "activation: none";
}

export function registerPolicyState(policy: Command): void {
  policy.command("load <bundle>")
    .description("verify, compile and load a bundle into the current slot (the old current becomes LKG); a bad bundle changes nothing")
    .requiredOption("--state-root <dir>", "the node's persistent state root")
    .option("--json", "machine-readable output")
    .action(action(async (bundle: string, flags: StateFlags) => {
      const r = await loadPolicy(flags.stateRoot, await readInputFile(bundle, "policy bundle"));
      r.loaded.engine.dispose();
      emit({ ok: true, policy_ref: r.loaded.ref, rotated: r.rotated, state: r.state }, flags,
        (x) => `policy load: OK\n${x.policy_ref}${x.rotated ? "" : " (already current)"}\n${stateText(x.state)}`);
    }));

  addStatusCommand(policy, "show the current and LKG policy slots and the activation of a state root");
}

/** `policy status` and `runtime status` show the same committed node state. */
function addStatusCommand(parent: Command, description: string): void {
  parent.command("status")
    .description(description)
    .requiredOption("--state-root <dir>", "the node's persistent state root")
    .option("--json", "machine-readable output")
    .action(action(async (flags: StateFlags) => {
      const state = await readNodeState(flags.stateRoot);
      emit({ ok: true, state }, flags, (x) => stateText(x.state));
    }));
}

/** `host:port` (the port may be 0: pick a free one) or `unix:/path/to.sock`. */
function parseListen(v: string): { host: string; port: number } | { path: string } {
  if (v.startsWith("unix:")) {
    const path = v.slice("unix:".length);
    if (!path.startsWith("/")) throw new InvalidArgumentError("expected unix:/absolute/path.sock");
    return { path };
  }
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/.exec(v);
  const port = Number(m?.[2]);
  if (!m || port > 65535) throw new InvalidArgumentError("expected HOST:PORT (e.g. 127.0.0.1:7777) or unix:/path.sock");
  return { host: m[1]?.replace(/^\[|\]$/g, "") ?? "", port };
}

function parseSocketMode(v: string): number {
  if (v !== "0600" && v !== "0660") throw new InvalidArgumentError("expected 0600 (the runtime's user) or 0660 (and its group)");
  return Number.parseInt(v, 8);
}

interface StartFlags extends StateFlags {
  listen: { host: string; port: number } | { path: string };
  socketMode?: number;
  tlsCert?: string;
  tlsKey?: string;
  config?: string;
  allowedDomains?: string;
  agentId?: string;
  decisionLog?: "durable" | "async";
  otlpUrl?: string;
  stdio?: boolean;
  http: boolean;
  server?: string;
  enrollToken?: string;
  nodeId?: string;
  channel: string;
  pollInterval: number;
  plainHttp?: boolean;
  serverPlainHttp?: boolean;
  serverCa?: string;
  /** `--no-export-events`: false. */
  exportEvents: boolean;
}

/** `--poll-interval 30s`: at least 1 s (a tighter loop would only load the control plane), at most a day. */
function parsePollInterval(v: string): number {
  let ms: number;
  try {
    ms = parseDuration(v);
  } catch {
    throw new InvalidArgumentError("expected a duration such as 30s, 5m");
  }
  if (ms < 1000 || ms > 86_400_000) throw new InvalidArgumentError("expected a duration between 1s and 24h");
  return ms;
}

/** What `--server` asks of the runtime: follow that control plane (enroll, heartbeat, poll releases). */
async function controlPlaneOptions(flags: StartFlags): Promise<ControlPlaneOptions | undefined> {
  const enrollToken = flags.enrollToken ?? process.env.AUTONOMY_ENROLL_TOKEN;
  if (flags.server === undefined) {
    if (enrollToken !== undefined && flags.enrollToken !== undefined) throw new UsageError("--enroll-token needs --server", "pass the control plane's URL with --server");
    if (flags.serverCa !== undefined) throw new UsageError("--server-ca needs --server", "pass the control plane's https URL with --server");
    return undefined;
  }
  return {
    server: flags.server, channel: flags.channel, pollIntervalMs: flags.pollInterval,
    ...(flags.exportEvents === false ? { exportEvents: false } : {}),
    ...(enrollToken !== undefined && enrollToken !== "" ? { enrollToken } : {}),
    ...(flags.nodeId !== undefined ? { nodeId: flags.nodeId } : {}),
    ...(flags.serverPlainHttp === true ? { plainHttp: true } : {}),
    ...(flags.serverCa !== undefined ? { ca: (await readInputFile(flags.serverCa, "control plane CA (--server-ca)")).toString("utf8") } : {}),
    repositoryOptions: repositoryOptions(flags),
  };
}

/** The flags that override the config file, as the runtime domain takes them (it merges file, defaults and overrides). */
function runtimeConfig(flags: StartFlags): Promise<RuntimeConfig> {
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) throw new UsageError("--tls-cert and --tls-key go together", "pass both the PEM certificate and its PEM private key");
  return resolveRuntimeConfig(flags.config, {
    ...(flags.tlsCert !== undefined && flags.tlsKey !== undefined ? { tls: { cert: flags.tlsCert, key: flags.tlsKey } } : {}),
    ...(flags.agentId !== undefined ? { agentId: flags.agentId } : {}),
    ...(flags.decisionLog !== undefined ? { decisionLog: flags.decisionLog } : {}),
    ...(flags.otlpUrl !== undefined ? { otlpUrl: flags.otlpUrl } : {}),
    ...(flags.allowedDomains !== undefined ? { allowedDomains: flags.allowedDomains.split(",").map((d) => d.trim()).filter(Boolean) } : {}),
  });
}

/** Serves until SIGINT/SIGTERM; status lines go to stderr so stdout can carry MCP (--stdio). */
async function runtimeStart(flags: StartFlags): Promise<void> {
  const say = (line: string): void => void process.stderr.write(`${line}\n`);
  const cp = await controlPlaneOptions(flags);
  const rt = await startRuntime({
    stateRoot: flags.stateRoot, config: await runtimeConfig(flags),
    ...(flags.http ? { listen: "path" in flags.listen ? { ...flags.listen, ...(flags.socketMode !== undefined ? { mode: flags.socketMode } : {}) } : flags.listen } : {}),
    ...(flags.stdio ? { stdio: true } : {}),
    onPolicyEvent: (e) => say(policyEventText(e)),
    ...(cp ? { controlPlane: cp } : {}),
  });
  if (rt.controlPlane) say(`control plane ${redactUrl(cp?.server ?? "")}: ${rt.controlPlane.enrolled ? "enrolled" : "following"} as node ${rt.controlPlane.nodeId}, channel ${cp?.channel ?? "stable"}`);
  if (rt.auth?.activeTokens === 0) {
    say(`warning: no tool-server tokens in ${rt.auth.tokensPath}: every call to /v1/tool, /v1/status and /mcp is refused (401) until one exists; create one (no restart needed): autonomy runtime token create --state-root ${flags.stateRoot} --agent AGENT_ID`);
  }
  const ready = { ok: true, url: rt.url ?? null, policy_ref: rt.policy.current()?.ref ?? "none", stdio: Boolean(flags.stdio), active_tokens: rt.auth?.activeTokens ?? null, node_id: rt.controlPlane?.nodeId ?? null };
  say(flags.json ? JSON.stringify(ready) : `runtime ready: ${ready.url ?? "(no HTTP)"}${ready.stdio ? " + MCP on stdio" : ""}; policy ${ready.policy_ref}`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await rt.close();
}

function policyEventText(e: LivePolicyEvent): string {
  if (e.type === "loaded") return `policy loaded (${e.slot}): ${e.ref}`;
  if (e.type === "none") return `no policy in force: ${e.reason}; every tool call is denied`;
  return `policy ${e.slot} ${e.digest} refused: ${messageOf(e.error)}`;
}

export function registerRuntimeState(runtime: Command): void {
  runtime.command("start")
    .description("serve tools to agents over HTTP (POST /v1/tool), MCP Streamable HTTP (/mcp) and optionally MCP stdio, enforcing the loaded policy on every call; HTTP callers need a bearer token (runtime token create), whose agent is the policy principal")
    .requiredOption("--state-root <dir>", "the node's persistent state root (policy slots, activation)")
    .option("--listen <address>", "HTTP address: HOST:PORT (loopback unless TLS and tokens are configured) or unix:/path.sock", parseListen, { host: "127.0.0.1", port: 7777 })
    .option("--socket-mode <mode>", "mode of the unix socket file: 0600 (default) or 0660", parseSocketMode)
    .option("--tls-cert <file>", "serve HTTPS with this PEM certificate (with --tls-key; overrides [tls] in the config)")
    .option("--tls-key <file>", "the PEM private key of --tls-cert")
    .option("--no-http", "do not serve HTTP (with --stdio)")
    .option("--stdio", "serve MCP on stdin/stdout (status lines go to stderr)")
    .option("--config <file>", "runtime config (.toml or .json): agent_id, node facts, allowed_domains, upstream MCP servers")
    .option("--allowed-domains <list>", "comma-separated hosts tool.http_get may reach (overrides the config)")
    .option("--agent-id <id>", "the agent identity of MCP over stdio, its policy principal (overrides the config; HTTP callers are the agents of their tokens)")
    .option("--otlp-url <url>", "drain the telemetry WAL to this OTLP/HTTP collector while running (overrides the config; headers from OTEL_EXPORTER_OTLP_HEADERS)", parseHttpUrl)
    .addOption(new Option("--decision-log <mode>", "durable: a decision event is on disk before the tool runs (an allow that cannot be recorded is denied); async: it follows (overrides the config)").choices(["durable", "async"]))
    .option("--server <url>", "follow this control plane: enroll on the first start (--enroll-token), heartbeat, poll for releases and activate new ones after verifying them against the node's trust root", parseHttpUrl)
    .option("--enroll-token <token>", "single-use enrollment token for the first start with --server (or AUTONOMY_ENROLL_TOKEN; a flag shows in `ps`); the node credential it buys is kept in control-plane.json (0600)")
    .option("--node-id <id>", "the node's id on the control plane at enrollment (default: derived from the host name)")
    .option("--channel <name>", "release channel to follow", "stable")
    .addOption(new Option("--poll-interval <duration>", "longest gap between release polls; each gap is drawn from [interval/2, interval]").argParser(parsePollInterval).default(30_000, "30s"))
    .option("--no-export-events", "with --server: do not send the WAL's events to the control plane's POST /v1/events (sent by default, with the node credential; [telemetry] control_plane_url sends them elsewhere)")
    .option("--plain-http", "talk HTTP instead of HTTPS to the registry releases are pulled from (loopback test registries); the control plane is --server-plain-http")
    .option("--server-ca <file>", "trust this PEM CA for the control plane's https certificate (a private CA), instead of the public ones")
    .option("--server-plain-http", "allow an http:// --server that is not loopback: the enrollment token and node credential travel in clear text (default refused; use https, with --server-ca for a private CA)")
    .option("--json", "machine-readable status line")
    .action(action(runtimeStart));

  registerRuntimeActivate(runtime);
  registerRuntimeTrust(runtime);

  addStatusCommand(runtime, "show what is activated and which policy is enforced on a state root");
  registerRuntimeToken(runtime);
}
