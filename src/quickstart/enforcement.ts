import { existsSync } from "node:fs";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Reference, RepositoryOptions } from "../oci/index.js";
import { DEFAULT_RUNTIME_CONFIG, activateRelease, startRuntime } from "../runtime/index.js";
import { createToken, setTrustRoot, stateRootPaths, telemetryWalDir } from "../node/index.js";
import { readCommitted } from "../telemetry/index.js";
import type { Record_ } from "./steps.js";

export interface EnforcementOptions {
  dir: string;
  ref: Reference;
  /** The node's trust root: the release public key (SPKI PEM) and the repository it follows. */
  trust: { publicPem: string; repository: string };
  repositoryOptions: RepositoryOptions;
}

/**
 * The node side of tutorial 01: set the node's trust root, activate the signed release into a state
 * root, create the agent's bearer token, start the runtime on a free loopback
 * port, then call tools as an agent would, over HTTP and over MCP (a call
 * without the token must get 401). `tool.echo` must run; `tool.shell` must be
 * refused and must never run (it would create a marker file).
 */
export async function enforcementSteps(opts: EnforcementOptions, record: Record_): Promise<string> {
  const stateRoot = join(opts.dir, "node");
  const trust = await setTrustRoot(stateRoot, { keys: [opts.trust.publicPem], repository: opts.trust.repository });
  record("trust", `node trusts key ${trust.trust.keys[0]?.keyId ?? "?"} for ${trust.trust.repository} on channel ${trust.trust.channel} (runtime trust set)`);
  const act = await activateRelease({ ref: opts.ref, stateRoot, repositoryOptions: opts.repositoryOptions });
  record("activate", `sequence ${act.activation.sequence} active in ${stateRoot}; policy ${act.policyRef}`);
  const agent = "quickstart-agent";
  const created = await createToken(stateRoot, agent);
  record("token", `${created.id} for agent ${agent} (stored hashed in ${stateRootPaths(stateRoot).tokens}; the agent sends it as Authorization: Bearer …)`);
  const bearer = { authorization: `Bearer ${created.token}` };
  const rt = await startRuntime({ stateRoot, config: { ...DEFAULT_RUNTIME_CONFIG, agentId: agent, node: { node_id: "quickstart-node" }, allowedDomains: [], upstreams: [], telemetry: {} }, listen: { host: "127.0.0.1", port: 0 } });
  try {
    const url = rt.url ?? "";
    record("runtime", `serving POST ${url}/v1/tool and MCP at ${url}/mcp under ${rt.policy.current()?.ref ?? "NO POLICY"}`);
    const marker = join(opts.dir, "shell-ran");
    const anonymous = await postTool(url, "tool.echo", { text: "who am I?" }, {});
    record("HTTP without a token", `${anonymous.status} ${String(anonymous.body.code)}: refused before any decision`, anonymous.status === 401 && anonymous.body.code === "AUTH_REQUIRED");
    await httpCalls(url, bearer, marker, record);
    await mcpCalls(url, bearer, marker, record);
  } finally {
    await rt.close();
  }
  const { entries, inspection } = await readCommitted(telemetryWalDir(stateRoot));
  const decisions = entries.filter((e) => e.event.type === "ai.policy.decision");
  record("telemetry", `${decisions.length} decision events durable in the WAL (safe_seq ${inspection.safe_seq ?? 0}): ${decisions.map((e) => `${String(e.event.tool)}=${String(e.event.decision)}`).join(", ")}`, decisions.length >= 4 && inspection.fail_hard === null);
  return stateRoot;
}

async function postTool(url: string, kind: string, params: Record<string, unknown>, bearer: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${url}/v1/tool`, { method: "POST", headers: { "content-type": "application/json", ...bearer }, body: JSON.stringify({ kind, params }) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function httpCalls(url: string, bearer: Record<string, string>, marker: string, record: Record_): Promise<void> {
  const echo = await postTool(url, "tool.echo", { text: "hello from the edge" }, bearer);
  record("HTTP tool.echo", `${echo.status} ${String(echo.body.decision)}: ${JSON.stringify(echo.body.output)}`, echo.status === 200 && echo.body.decision === "allow");
  const shell = await postTool(url, "tool.shell", { command: `touch ${marker}` }, bearer);
  const refused = shell.status === 403 && shell.body.decision === "deny" && !existsSync(marker);
  record("HTTP tool.shell", `${shell.status} ${String(shell.body.decision)}: ${String(shell.body.reason)}; the command never ran`, refused);
}

async function mcpCalls(url: string, bearer: Record<string, string>, marker: string, record: Record_): Promise<void> {
  const client = new Client({ name: "autonomy-quickstart", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: bearer } }));
  try {
    const tools = await client.listTools();
    const echo = await client.callTool({ name: "tool.echo", arguments: { text: "hello over MCP" } });
    record("MCP tool.echo", `allowed (${tools.tools.length} tools offered)`, echo.isError !== true);
    const shell = await client.callTool({ name: "tool.shell", arguments: { command: `touch ${marker}` } });
    const text = JSON.stringify(shell.content).slice(0, 160);
    record("MCP tool.shell", `refused with a structured result: ${text}`, shell.isError === true && !existsSync(marker));
  } finally {
    await client.close();
  }
}
