import { existsSync } from "node:fs";
import { Writable } from "node:stream";
import { UsageError } from "../../src/lib/index.js";
import { createLogger } from "../../src/observability/index.js";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { FastifyInstance } from "fastify";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { LoadedPolicy } from "../../src/policy/index.js";
import { MemorySink } from "../../src/runtime/decision-sinks.js";
import { createToolServer } from "../../src/runtime/http-server.js";
import { createMcpServer } from "../../src/runtime/mcp-server.js";
import { builtinTools } from "../../src/runtime/tools/index.js";
import { EXAMPLE_POLICIES, interceptorFor, listen, mutablePolicy, policyOf, testAuth } from "../helpers/tool-server.js";
import type { TestAuth } from "../helpers/tool-server.js";

const PERMIT_ALL = { name: "permit_all.cedar", text: '@id("permit_all")\npermit (principal, action, resource);' };
const FORBID_BOOM = {
  name: "forbid_boom.cedar",
  text: '@id("no_boom")\nforbid (principal, action == Action::"tool:tool.echo", resource) when { context.params has text && context.params.text == "boom" };',
};

let dir: string;
let auth: TestAuth;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "aops-runtime-mcp-"));
  auth = await testAuth(dir);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

/** A tool server over `policy` and an MCP client connected to its /mcp over Streamable HTTP. */
async function connectHttp(policy: LoadedPolicy | undefined): Promise<{ client: Client; base: string; app: FastifyInstance }> {
  const source = mutablePolicy(policy);
  const app = createToolServer({ interceptor: interceptorFor(source), tools: builtinTools({ shell: { cwd: dir } }), policy: source, auth: auth.auth });
  const base = await listen(app);
  cleanups.push(() => app.close());
  const client = new Client({ name: "runtime-mcp-test", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: auth.headers() } }));
  cleanups.push(() => client.close());
  return { client, base, app };
}

function textOf(r: CallToolResult): string {
  const first = r.content[0];
  if (first?.type !== "text") throw new Error("expected text content");
  return first.text;
}

async function call(client: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

describe("MCP over Streamable HTTP at /mcp (stateless)", () => {
  const example = policyOf(EXAMPLE_POLICIES, "example");

  it("lists every tool, including ones the policy forbids, with JSON Schema inputs", async () => {
    const { client } = await connectHttp(example);
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toEqual(["tool.echo", "tool.http_get", "tool.shell"]);
    expect(tools[0]?.inputSchema).toMatchObject({ type: "object", required: ["text"] });
  });

  it("runs an allowed call and returns its output with the decision in _meta", async () => {
    const { client } = await connectHttp(example);
    const r = await call(client, "tool.echo", { text: "hello" });
    expect(r.isError).toBeFalsy();
    expect(JSON.parse(textOf(r))).toEqual({ text: "hello" });
    expect(r.structuredContent).toEqual({ text: "hello" });
    expect(r._meta).toEqual({ "autonomyops/decision": "allow", "autonomyops/policy_ref": example.ref });
  });

  it("refuses a forbidden call with isError and a structured refusal, and never runs it", async () => {
    const { client } = await connectHttp(example);
    const marker = join(dir, "mcp-shell-ran");
    const r = await call(client, "tool.shell", { command: `touch ${marker}` });
    expect(r.isError).toBe(true);
    const refusal = JSON.parse(textOf(r)) as Record<string, unknown>;
    expect(refusal).toMatchObject({ decision: "deny", policy_ref: example.ref, policies: ["shell_deny"] });
    expect(typeof refusal.reason).toBe("string");
    expect(r.structuredContent).toEqual(refusal);
    expect(existsSync(marker)).toBe(false);
  });

  it("reports bad params of an allowed call as isError with decision allow", async () => {
    const { client } = await connectHttp(example);
    const r = await call(client, "tool.echo", { text: 42 });
    expect(r.isError).toBe(true);
    expect(JSON.parse(textOf(r))).toMatchObject({ decision: "allow", error: { code: "TOOL_PARAMS_INVALID" } });
  });

  it("refuses every call when no policy is loaded", async () => {
    const { client } = await connectHttp(undefined);
    const marker = join(dir, "mcp-shell-ran-nopolicy");
    for (const [name, args] of [["tool.echo", { text: "x" }], ["tool.shell", { command: `touch ${marker}` }]] as const) {
      const r = await call(client, name, args);
      expect(r.isError).toBe(true);
      expect(JSON.parse(textOf(r))).toMatchObject({ decision: "deny", policy_ref: "none" });
    }
    expect(existsSync(marker)).toBe(false);
  });

  it("lets one forbid beat a permit-all", async () => {
    const { client } = await connectHttp(policyOf([PERMIT_ALL, FORBID_BOOM]));
    expect((await call(client, "tool.echo", { text: "fine" })).isError).toBeFalsy();
    const r = await call(client, "tool.echo", { text: "boom" });
    expect(r.isError).toBe(true);
    expect(JSON.parse(textOf(r))).toMatchObject({ decision: "deny", policies: ["no_boom"] });
  });

  it("counts MCP decisions in /v1/status", async () => {
    const { client, base } = await connectHttp(example);
    await call(client, "tool.echo", { text: "x" });
    await call(client, "tool.shell", { command: "true" });
    const status = (await (await fetch(`${base}/v1/status`, { headers: auth.headers() })).json()) as { decisions: { by_transport: Record<string, unknown> } };
    expect(status.decisions.by_transport.mcp).toEqual({ allow: 1, deny: 1, failed: 0 });
  });

  it("records each decision with the transport it came in on", async () => {
    const sink = new MemorySink();
    const source = mutablePolicy(example);
    const app = createToolServer({ interceptor: interceptorFor(source, sink), tools: builtinTools(), policy: source, auth: auth.auth });
    cleanups.push(() => app.close());
    const base = await listen(app);
    const client = new Client({ name: "sink-test", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: auth.headers() } }));
    cleanups.push(() => client.close());
    await call(client, "tool.shell", { command: "true" });
    await fetch(`${base}/v1/tool`, { method: "POST", headers: { "content-type": "application/json", ...auth.headers() }, body: JSON.stringify({ kind: "tool.echo", params: { text: "x" } }) });
    expect(sink.events().map((e) => [e.transport, e.tool, e.decision])).toEqual([
      ["mcp", "tool.shell", "deny"],
      ["http", "tool.echo", "allow"],
    ]);
  });

  it("answers GET and DELETE with 405 (no sessions, no SSE stream)", async () => {
    const { base } = await connectHttp(example);
    for (const method of ["GET", "DELETE"]) {
      const res = await fetch(`${base}/mcp`, { method, headers: { accept: "text/event-stream", ...auth.headers() } });
      expect(res.status).toBe(405);
      expect(res.headers.get("allow")).toBe("POST");
      expect(await res.json()).toMatchObject({ jsonrpc: "2.0", error: { code: -32000 } });
    }
  });

  it("answers a malformed body with a JSON-RPC parse error", async () => {
    const { base } = await connectHttp(example);
    const res = await fetch(`${base}/mcp`, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...auth.headers() }, body: "{oops" });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ jsonrpc: "2.0", error: { code: -32700 }, id: null });
  });

  /** A server whose interceptor throws `err` on every tools/call; its log lines go to `lines`. */
  async function throwingServer(err: Error, lines: string[]): Promise<Client> {
    const destination = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(chunk.toString("utf8")); cb(); } });
    const logger = createLogger({ name: "autonomy.runtime.http", level: "warn", destination });
    const app = createToolServer({ interceptor: { call: () => Promise.reject(err) }, tools: builtinTools(), policy: mutablePolicy(example), logger, auth: auth.auth });
    const base = await listen(app);
    cleanups.push(() => app.close());
    const client = new Client({ name: "runtime-mcp-test", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: auth.headers() } }));
    cleanups.push(() => client.close());
    return client;
  }

  it("an unexpected error in the interceptor answers -32603 with a generic message and the stable code, never its text (which is logged)", async () => {
    const lines: string[] = [];
    const client = await throwingServer(new Error("EACCES /var/lib/autonomy/secret.key token=s3cret"), lines);
    const e = (await call(client, "tool.echo", { text: "x" }).catch((x: unknown) => x)) as { code?: number; message?: string; data?: unknown };
    expect(e.code).toBe(-32603);
    expect(e.message).toContain("internal error; the call was not run");
    expect(e.message).not.toContain("s3cret");
    expect(e.message).not.toContain("/var/lib");
    expect(e.data).toEqual({ code: "INTERNAL", status: 500 });
    expect(lines.join("")).toContain("token=s3cret");
  });

  it("a domain error keeps its message and code", async () => {
    const client = await throwingServer(new UsageError("tool.echo: text must be a string", "send a string"), []);
    const e = (await call(client, "tool.echo", { text: "x" }).catch((x: unknown) => x)) as { code?: number; message?: string; data?: unknown };
    expect(e.code).toBe(-32000);
    expect(e.message).toContain("tool.echo: text must be a string");
    expect(e.data).toMatchObject({ code: "USAGE", status: 400 });
  });

  it("refuses requests from a foreign browser origin", async () => {
    const { base } = await connectHttp(example);
    const res = await fetch(`${base}/mcp`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", origin: "http://evil.example", ...auth.headers() },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    expect(res.status).toBe(403);
  });

  it("is not served when mcp is false", async () => {
    const source = mutablePolicy(example);
    const app = createToolServer({ interceptor: interceptorFor(source), tools: builtinTools(), policy: source, mcp: false, auth: auth.auth });
    cleanups.push(() => app.close());
    const base = await listen(app);
    expect((await fetch(`${base}/mcp`, { method: "POST" })).status).toBe(404);
  });
});

/** A client linked to `server` over an in-memory transport (as stdio serves it); both closed after the test. */
async function connectInMemory(server: ReturnType<typeof createMcpServer>): Promise<Client> {
  const [a, b] = InMemoryTransport.createLinkedPair();
  await server.connect(a);
  const client = new Client({ name: "in-memory", version: "1.0.0" });
  await client.connect(b);
  cleanups.push(async () => {
    await client.close();
    await server.close();
  });
  return client;
}

describe("the MCP server object (as served on stdio), over an in-memory transport", () => {
  it("enforces policy the same way", async () => {
    const server = createMcpServer({ interceptor: interceptorFor(() => policyOf(EXAMPLE_POLICIES)), tools: builtinTools({ shell: { cwd: dir } }) });
    const client = await connectInMemory(server);
    expect(JSON.parse(textOf(await call(client, "tool.echo", { text: "hi" })))).toEqual({ text: "hi" });
    const marker = join(dir, "inmemory-shell-ran");
    const denied = await call(client, "tool.shell", { command: `touch ${marker}` });
    expect(denied.isError).toBe(true);
    expect(existsSync(marker)).toBe(false);
  });

  it("decides stdio calls for the process's configured identity (no token on stdio)", async () => {
    const sink = new MemorySink();
    const server = createMcpServer({ interceptor: interceptorFor(() => policyOf(EXAMPLE_POLICIES), sink), tools: builtinTools() });
    const client = await connectInMemory(server);
    await call(client, "tool.echo", { text: "hi" });
    expect(sink.events().map((e) => [e.agent_id, e.token_id, e.transport])).toEqual([["test-agent", undefined, "mcp"]]);
  });
});

describe("serveMcpStdio in a child process", () => {
  it("serves the tools on stdio with the policy enforced", async () => {
    const root = new URL("../..", import.meta.url).pathname;
    // The child builds the same runtime pieces and serves them on its stdin/stdout.
    const script = `
      import { serveMcpStdio } from "./src/runtime/mcp-server.ts";
      import { builtinTools } from "./src/runtime/tools/index.ts";
      import { EXAMPLE_POLICIES, interceptorFor, policyOf } from "./test/helpers/tool-server.ts";
      const policy = policyOf(EXAMPLE_POLICIES, "stdio-example");
      await serveMcpStdio({ interceptor: interceptorFor(() => policy), tools: builtinTools({ shell: { cwd: ${JSON.stringify(dir)} } }) });
    `;
    const transport = new StdioClientTransport({ command: process.execPath, args: ["--import", "tsx", "--input-type=module", "-e", script], cwd: root, stderr: "pipe" });
    const client = new Client({ name: "stdio-test", version: "1.0.0" });
    await client.connect(transport);
    cleanups.push(() => client.close());
    expect((await client.listTools()).tools.map((t) => t.name)).toContain("tool.shell");
    const ok = await call(client, "tool.echo", { text: "over stdio" });
    expect(JSON.parse(textOf(ok))).toEqual({ text: "over stdio" });
    const marker = join(dir, "stdio-shell-ran");
    const denied = await call(client, "tool.shell", { command: `touch ${marker}` });
    expect(denied.isError).toBe(true);
    expect(JSON.parse(textOf(denied))).toMatchObject({ decision: "deny", policy_ref: expect.stringContaining("stdio-example") as unknown });
    expect(existsSync(marker)).toBe(false);
  });
});
