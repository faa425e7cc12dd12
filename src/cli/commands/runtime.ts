import { InvalidArgumentError, Option } from "commander";
import type { Command } from "commander";
import { loadPublicKey, parseDuration } from "../../sign/index.js";
import { activateRelease, startRuntime, resolveRuntimeConfig } from "../../runtime/index.js";
import type { RuntimeConfig } from "../../runtime/index.js";
import { loadPolicy, readNodeState } from "../../node/index.js";
import type { LivePolicyEvent, NodeState } from "../../node/index.js";
import { parseReference } from "../../oci/index.js";
import { action } from "../run.js";
import { emit } from "../output.js";
import { parseHttpUrl, readInputFile, repositoryOptions } from "../common.js";
import type { RegistryFlags } from "../common.js";
import { messageOf } from "../../lib/index.js";

interface StateFlags {
  stateRoot: string;
  json?: boolean;
}

/** One-screen summary of the node state for operators. */
function stateText(s: NodeState): string {
  const slot = (name: string, x: NodeState["current"]): string => `${name}: ${x ? `${x.name}@${x.version} ${x.digest} (loaded ${x.loaded_at})` : "none"}`;
  const a = s.activation;
  return [
    slot("policy current", s.current),
    slot("policy lkg    ", s.lkg),
    a ? `activation: ${a.ref}\n  sequence ${a.sequence}${a.rollback ? " (rollback)" : ""}, lock ${a.lock_fingerprint}, activated ${a.activated_at}` : "activation: none",
    `highest sequence: ${s.highest_sequence}`,
  ].join("\n");
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

/** `host:port` → parts; the port may be 0 (pick a free one). */
function parseListen(v: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/.exec(v);
  const port = Number(m?.[2]);
  if (!m || port > 65535) throw new InvalidArgumentError("expected HOST:PORT, e.g. 127.0.0.1:7777");
  return { host: m[1]?.replace(/^\[|\]$/g, "") ?? "", port };
}

interface StartFlags extends StateFlags {
  listen: { host: string; port: number };
  config?: string;
  allowedDomains?: string;
  agentId?: string;
  decisionLog?: "durable" | "async";
  otlpUrl?: string;
  stdio?: boolean;
  http: boolean;
}

/** The flags that override the config file, as the runtime domain takes them (it merges file, defaults and overrides). */
function runtimeConfig(flags: StartFlags): Promise<RuntimeConfig> {
  return resolveRuntimeConfig(flags.config, {
    ...(flags.agentId !== undefined ? { agentId: flags.agentId } : {}),
    ...(flags.decisionLog !== undefined ? { decisionLog: flags.decisionLog } : {}),
    ...(flags.otlpUrl !== undefined ? { otlpUrl: flags.otlpUrl } : {}),
    ...(flags.allowedDomains !== undefined ? { allowedDomains: flags.allowedDomains.split(",").map((d) => d.trim()).filter(Boolean) } : {}),
  });
}

/** Serves until SIGINT/SIGTERM; status lines go to stderr so stdout can carry MCP (--stdio). */
async function runtimeStart(flags: StartFlags): Promise<void> {
  const say = (line: string): void => void process.stderr.write(`${line}\n`);
  const rt = await startRuntime({
    stateRoot: flags.stateRoot, config: await runtimeConfig(flags),
    ...(flags.http ? { listen: flags.listen } : {}),
    ...(flags.stdio ? { stdio: true } : {}),
    onPolicyEvent: (e) => say(policyEventText(e)),
  });
  const ready = { ok: true, url: rt.url ?? null, policy_ref: rt.policy.current()?.ref ?? "none", stdio: Boolean(flags.stdio) };
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
    .description("serve tools to agents over HTTP (POST /v1/tool), MCP Streamable HTTP (/mcp) and optionally MCP stdio, enforcing the loaded policy on every call")
    .requiredOption("--state-root <dir>", "the node's persistent state root (policy slots, activation)")
    .option("--listen <host:port>", "HTTP address", parseListen, { host: "127.0.0.1", port: 7777 })
    .option("--no-http", "do not serve HTTP (with --stdio)")
    .option("--stdio", "serve MCP on stdin/stdout (status lines go to stderr)")
    .option("--config <file>", "runtime config (.toml or .json): agent_id, node facts, allowed_domains, upstream MCP servers")
    .option("--allowed-domains <list>", "comma-separated hosts tool.http_get may reach (overrides the config)")
    .option("--agent-id <id>", "the agent identity, the policy principal (overrides the config)")
    .option("--otlp-url <url>", "drain the telemetry WAL to this OTLP/HTTP collector while running (overrides the config; headers from OTEL_EXPORTER_OTLP_HEADERS)", parseHttpUrl)
    .addOption(new Option("--decision-log <mode>", "durable: a decision event is on disk before the tool runs (an allow that cannot be recorded is denied); async: it follows (overrides the config)").choices(["durable", "async"]))
    .option("--json", "machine-readable status line")
    .action(action(runtimeStart));

  runtime.command("activate <ref>")
    .description("pull, verify (signatures, digests, lock, bundle, sequence) and activate a release with one atomic commit")
    .requiredOption("--key <file>", "trusted public key (SPKI PEM)")
    .requiredOption("--state-root <dir>", "the node's persistent state root")
    .option("--max-age <duration>", "oldest acceptable signature", "8760h")
    .option("--plain-http", "talk HTTP to the registry (loopback test registries)")
    .option("--json", "machine-readable output")
    .action(action(async (refIn: string, flags: StateFlags & RegistryFlags & { key: string; maxAge: string }) => {
      const r = await activateRelease({
        ref: parseReference(refIn), key: await loadPublicKey(flags.key), stateRoot: flags.stateRoot,
        maxAgeMs: parseDuration(flags.maxAge), repositoryOptions: repositoryOptions(flags),
      });
      emit({ ok: true, changed: r.changed, activation: r.activation, policy_ref: r.policyRef, steps: r.verification.steps }, flags,
        (x) => `${x.changed ? "activated" : "already active"}: ${x.activation.ref}\nsequence ${x.activation.sequence}, policy ${x.policy_ref}\n${x.steps.map((s) => `  ✓ ${s.step}: ${s.detail}`).join("\n")}`);
    }));

  addStatusCommand(runtime, "show what is activated and which policy is enforced on a state root");
}
