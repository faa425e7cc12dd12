import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { FastifyInstance } from "fastify";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { LoadedPolicy } from "../../src/policy/index.js";
import { RuntimeError } from "../../src/runtime/errors.js";
import { createToolServer } from "../../src/runtime/http-server.js";
import { builtinTools, toolRegistry } from "../../src/runtime/tools/index.js";
import { connectUpstreams, parseUpstreamConfigs } from "../../src/runtime/upstream.js";
import type { Upstreams } from "../../src/runtime/upstream.js";
import { needs } from "../helpers/needs.js";
import { EXAMPLE_POLICIES, interceptorFor, listen, mutablePolicy, policyOf, testAuth } from "../helpers/tool-server.js";
import type { TestAuth } from "../helpers/tool-server.js";

const FIXTURE = new URL("../fixtures/mcp-upstream.js", import.meta.url).pathname;
const UPSTREAM = { name: "up", command: [process.execPath, FIXTURE] };

// Upstream tools are named <upstream>.<tool>, so policy names them as Action::"tool:up.add".
const UP_POLICY = [
  ...EXAMPLE_POLICIES,
  { name: "up_add.cedar", text: '@id("up_add_allow")\npermit (principal, action == Action::"tool:up.add", resource);' },
  { name: "up_fail.cedar", text: '@id("up_fail_allow")\npermit (principal, action in [Action::"tool:up.fail", Action::"tool:up.crash"], resource);' },
  { name: "up_danger.cedar", text: '@id("up_danger_deny")\nforbid (principal, action == Action::"tool:up.danger", resource);' },
];

let dir: string;
let auth: TestAuth;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "aops-runtime-upstream-"));
  auth = await testAuth(dir);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function upstreams(): Promise<Upstreams> {
  const ups = await connectUpstreams([UPSTREAM]);
  cleanups.push(() => ups.close());
  return ups;
}

async function serve(ups: Upstreams, policy: LoadedPolicy | undefined): Promise<{ base: string; app: FastifyInstance }> {
  const source = mutablePolicy(policy);
  const app = createToolServer({ interceptor: interceptorFor(source), tools: toolRegistry(builtinTools(), ups.tools), policy: source, auth: auth.auth });
  cleanups.push(() => app.close());
  return { base: await listen(app), app };
}

async function post(base: string, kind: string, params: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}/v1/tool`, { method: "POST", headers: { "content-type": "application/json", ...auth.headers() }, body: JSON.stringify({ kind, params }) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Pids of this process's children running the fixture. */
function fixtureChildren(): number[] {
  const out = execFileSync("ps", ["-o", "pid=,args=", "--ppid", String(process.pid)], { encoding: "utf8" });
  return out
    .split("\n")
    .filter((l) => l.includes("mcp-upstream.js"))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

describe("connectUpstreams over stdio", () => {
  it("offers each upstream tool as <name>.<tool> with its input schema", async () => {
    const ups = await upstreams();
    expect([...ups.tools.keys()]).toEqual(["up.add", "up.danger", "up.fail", "up.crash"]);
    expect(ups.tools.get("up.add")?.inputSchema).toMatchObject({ type: "object", required: ["a", "b"] });
    expect(ups.status()).toEqual([{ name: "up", connected: true, tools: 4 }]);
  });

  it("runs a proxied tool directly", async () => {
    const ups = await upstreams();
    const out = await ups.tools.get("up.add")?.run({ a: 2, b: 3 });
    expect(out?.output).toEqual({ content: [{ type: "text", text: "5" }], structuredContent: { sum: 5 } });
  });

  needs("procps").it("shuts the child down on close()", async () => {
    const ups = await connectUpstreams([UPSTREAM]);
    expect(fixtureChildren()).toHaveLength(1);
    await ups.close();
    expect(fixtureChildren()).toHaveLength(0);
    await expect(ups.tools.get("up.add")?.run({ a: 1, b: 1 })).rejects.toMatchObject({ code: "UPSTREAM_UNAVAILABLE" });
  });
});

describe("proxied tools behind the interceptor", () => {
  it("runs an upstream tool the policy permits (HTTP 200)", async () => {
    const { base } = await serve(await upstreams(), policyOf(UP_POLICY, "up-policy"));
    const r = await post(base, "up.add", { a: 20, b: 22 });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ decision: "allow", output: { structuredContent: { sum: 42 } } });
  });

  it("refuses an upstream tool the policy forbids (HTTP 403) and the upstream never sees it", async () => {
    const { base } = await serve(await upstreams(), policyOf(UP_POLICY, "up-policy"));
    const marker = join(dir, "danger-http");
    const r = await post(base, "up.danger", { path: marker });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ decision: "deny", policies: ["up_danger_deny"] });
    expect(existsSync(marker)).toBe(false);
  });

  it("refuses every upstream tool when no policy is loaded", async () => {
    const { base } = await serve(await upstreams(), undefined);
    expect((await post(base, "up.add", { a: 1, b: 1 })).status).toBe(403);
  });

  it("does reach the upstream when a policy permits the dangerous tool (the proxy is real)", async () => {
    const permitAll = { name: "all.cedar", text: "permit (principal, action, resource);" };
    const { base } = await serve(await upstreams(), policyOf([permitAll]));
    const marker = join(dir, "danger-permitted");
    expect((await post(base, "up.danger", { path: marker })).status).toBe(200);
    expect(existsSync(marker)).toBe(true);
  });

  it("answers 400 TOOL_FAILED when the upstream reports a tool error", async () => {
    const { base } = await serve(await upstreams(), policyOf(UP_POLICY));
    const r = await post(base, "up.fail", {});
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ decision: "allow", error: { code: "TOOL_FAILED" } });
    expect((r.body.error as { message: string }).message).toContain("fixture failure");
  });

  it("answers 400 TOOL_PARAMS_INVALID when the upstream rejects the arguments", async () => {
    const { base } = await serve(await upstreams(), policyOf(UP_POLICY));
    const r = await post(base, "up.add", { a: "two" });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ decision: "allow", error: { code: "TOOL_PARAMS_INVALID" } });
  });

  it("answers 400 UPSTREAM_UNAVAILABLE when the upstream dies, then reconnects on the next call", async () => {
    const ups = await upstreams();
    const { base } = await serve(ups, policyOf(UP_POLICY));
    const r = await post(base, "up.crash", {});
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ decision: "allow", error: { code: "UPSTREAM_UNAVAILABLE" } });
    expect((r.body.error as { message: string }).message).toContain("up");
    const again = await post(base, "up.add", { a: 1, b: 2 });
    expect(again.status).toBe(200);
    expect(again.body.output).toMatchObject({ structuredContent: { sum: 3 } });
  });

  it("a caller of a crashed upstream learns its name and UPSTREAM_UNAVAILABLE only, not its command line (a secret flag) or its stderr; the runtime log has both", async () => {
    const lines: Record<string, unknown>[] = [];
    const log = { warn: (obj: Record<string, unknown>, msg: string) => void lines.push({ ...obj, msg }) };
    const ups = await connectUpstreams([{ name: "up", command: [process.execPath, FIXTURE, "--api-key=sk-live-SECRET123"] }], { log });
    cleanups.push(() => ups.close());
    const { base } = await serve(ups, policyOf(UP_POLICY));
    const r = await post(base, "up.crash", {});
    expect(r.body).toMatchObject({ decision: "allow", error: { code: "UPSTREAM_UNAVAILABLE" } });
    const text = JSON.stringify(r.body);
    expect(text).toContain("upstream MCP server up");
    expect(text).not.toContain("sk-live-SECRET123");
    expect(text).not.toContain("crashing on request");
    expect(text).not.toContain(FIXTURE);
    const logged = JSON.stringify(lines);
    expect(lines[0]).toMatchObject({ msg: "UPSTREAM_UNAVAILABLE", upstream: "up" });
    expect(logged).toContain("crashing on request");
    expect(logged).toContain("--api-key=");
  });

  it("passes the upstream's content through unchanged to an MCP client", async () => {
    const { base } = await serve(await upstreams(), policyOf(UP_POLICY, "up-policy"));
    const client = new Client({ name: "upstream-test", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: auth.headers() } }));
    cleanups.push(() => client.close());
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(["tool.echo", "tool.http_get", "tool.shell", "up.add", "up.danger", "up.fail", "up.crash"]);
    const ok = (await client.callTool({ name: "up.add", arguments: { a: 2, b: 2 } })) as CallToolResult;
    expect(ok.content).toEqual([{ type: "text", text: "4" }]);
    expect(ok.structuredContent).toEqual({ sum: 4 });
    const marker = join(dir, "danger-mcp");
    const denied = (await client.callTool({ name: "up.danger", arguments: { path: marker } })) as CallToolResult;
    expect(denied.isError).toBe(true);
    expect(denied.structuredContent).toMatchObject({ decision: "deny", policies: ["up_danger_deny"] });
    expect(existsSync(marker)).toBe(false);
  });
});

describe("an upstream over Streamable HTTP (another runtime's /mcp)", () => {
  it("proxies it under its name, with both runtimes' policies applied", async () => {
    // The far runtime allows echo and forbids shell; the near one permits everything of "peer".
    const farPolicy = mutablePolicy(policyOf(EXAMPLE_POLICIES, "far"));
    const far = createToolServer({ interceptor: interceptorFor(farPolicy), tools: builtinTools({ shell: { cwd: dir } }), policy: farPolicy, auth: auth.auth });
    cleanups.push(() => far.close());
    const farBase = await listen(far);
    // The far runtime wants a bearer token like any caller; the near one reads it from the environment its config names.
    process.env.AUTONOMY_TEST_PEER_TOKEN = auth.tokens["test-agent"];
    cleanups.push(() => Promise.resolve(delete process.env.AUTONOMY_TEST_PEER_TOKEN));
    const ups = await connectUpstreams([{ name: "peer", url: `${farBase}/mcp`, token_env: "AUTONOMY_TEST_PEER_TOKEN" }]);
    cleanups.push(() => ups.close());
    expect([...ups.tools.keys()]).toEqual(["peer.tool.echo", "peer.tool.http_get", "peer.tool.shell"]);
    const nearPolicy = { name: "peer.cedar", text: 'permit (principal, action in [Action::"tool:peer.tool.echo", Action::"tool:peer.tool.shell"], resource);' };
    const { base } = await serve(ups, policyOf([nearPolicy], "near"));
    const ok = await post(base, "peer.tool.echo", { text: "via peer" });
    expect(ok.status).toBe(200);
    expect(ok.body.output).toMatchObject({ structuredContent: { text: "via peer" } });
    // Near permits it, far forbids it: the far refusal comes back as a failed call, and nothing ran.
    const marker = join(dir, "peer-shell");
    const refused = await post(base, "peer.tool.shell", { command: `touch ${marker}` });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ decision: "allow", policy_ref: expect.stringContaining("near") as unknown, error: { code: "TOOL_FAILED" } });
    expect((refused.body.error as { message: string }).message).toContain('"decision":"deny"');
    expect(existsSync(marker)).toBe(false);
  });
});

describe("upstream configuration", () => {
  it("attack 5: a token_env bearer token is never configured to travel in clear text to another host (https, or http to loopback only)", () => {
    expect(() => parseUpstreamConfigs([{ name: "far", url: "http://10.0.0.5:7777/mcp", token_env: "UP_TOKEN" }])).toThrow(/upstreams\[0\]\.token_env: token_env sends a bearer token/);
    for (const url of ["https://runtime.example/mcp", "http://127.0.0.1:7777/mcp", "http://localhost:7777/mcp", "http://[::1]:7777/mcp"]) {
      expect(parseUpstreamConfigs([{ name: "ok", url, token_env: "UP_TOKEN" }]), url).toHaveLength(1);
    }
    expect(parseUpstreamConfigs([{ name: "tokenless", url: "http://10.0.0.5:7777/mcp" }])).toHaveLength(1);
  });

  it("rejects bad configs with RUNTIME_CONFIG_INVALID naming the field", () => {
    const bad: [unknown, RegExp][] = [
      [[{ name: "has.dot", command: ["x"] }], /name/],
      [[{ name: "both", command: ["x"], url: "http://127.0.0.1/mcp" }], /exactly one of command or url/],
      [[{ name: "neither" }], /exactly one of command or url/],
      [[{ name: "ftp", url: "ftp://127.0.0.1/" }], /url/],
      [[{ name: "dup", command: ["x"] }, { name: "dup", command: ["y"] }], /two upstreams are named dup/],
      [[{ name: "clear", url: "http://10.0.0.5:7777/mcp", token_env: "UP_TOKEN" }], /token_env.*https, or http to a loopback/],
      [[{ name: "clear", url: "http://runtime.example/mcp", token_env: "UP_TOKEN" }], /token_env/],
    ];
    for (const [config, re] of bad) {
      let err: unknown;
      try {
        parseUpstreamConfigs(config);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(config)).toBeInstanceOf(RuntimeError);
      expect((err as RuntimeError).code).toBe("RUNTIME_CONFIG_INVALID");
      expect((err as RuntimeError).message).toMatch(re);
    }
  });

  needs("procps").it("fails with UPSTREAM_UNAVAILABLE when an upstream cannot start, and leaves no child behind", async () => {
    const err = await connectUpstreams([UPSTREAM, { name: "broken", command: [process.execPath, "-e", "process.stderr.write('no such server\\n'); process.exit(7)"] }], { connectTimeoutMs: 5000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).code).toBe("UPSTREAM_UNAVAILABLE");
    expect((err as RuntimeError).message).toContain("broken");
    expect(fixtureChildren()).toHaveLength(0);
  });

  it("fails with UPSTREAM_UNAVAILABLE when an HTTP upstream does not answer", async () => {
    const err = await connectUpstreams([{ name: "gone", url: "http://127.0.0.1:1/mcp" }], { connectTimeoutMs: 2000 }).catch((e: unknown) => e);
    expect((err as RuntimeError).code).toBe("UPSTREAM_UNAVAILABLE");
  });
});
