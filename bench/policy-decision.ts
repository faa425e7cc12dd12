/**
 * Policy-decision benchmark: what enforcing policy on every tool call costs.
 *   - decision latency (Interceptor.decide, and the engine alone) for generated
 *     Cedar bundles of 10, 100 and 1,000 policies
 *   - the interceptor's overhead on a tool.echo call over HTTP and over MCP,
 *     each beside the same transport with the interceptor bypassed (the peer)
 *     and beside calling the tool directly (the limit)
 * Requests are sequential over one keep-alive connection on loopback.
 * Budget (reported, not asserted): p99 decision < 250 µs at 100 policies.
 * Run: npm run bench:policy
 */
import { Agent, request } from "node:http";
import { cpus, loadavg } from "node:os";
import Fastify from "fastify";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { createCedarCompiler } from "../src/policy/index.js";
import type { PolicyFile } from "../src/policy/index.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { createToolServer } from "../src/runtime/http-server.js";
import { createMcpServer } from "../src/runtime/mcp-server.js";
import type { ToolCallInterceptor } from "../src/runtime/mcp-server.js";
import { builtinTools } from "../src/runtime/tools/index.js";
import type { InterceptResult, ToolCall } from "../src/runtime/types.js";
import { EXAMPLE_POLICIES, interceptorFor, listen, policyOf, testAuth } from "../test/helpers/tool-server.js";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Wal } from "../src/telemetry/index.js";
import { WalDecisionSink } from "../src/runtime/wal-sink.js";

const DECISIONS = 20_000;
const DECISION_WARMUP = 2_000;
const REQUESTS = 5_000;
const REQUEST_WARMUP = 500;
const BUDGET_US = 250;

interface Stats {
  p50: number;
  p99: number;
}
const rows: string[][] = [];
const us = (s: Stats): [string, string] => [s.p50.toFixed(1), s.p99.toFixed(1)];

function pct(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** Per-call latency in µs of `n` calls after `warmup` unmeasured ones. */
async function measure(n: number, warmup: number, f: (i: number) => unknown): Promise<Stats> {
  for (let i = 0; i < warmup; i++) await f(i);
  const t = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    await f(i);
    t[i] = Number(process.hrtime.bigint() - s) / 1e3;
  }
  t.sort();
  return { p50: pct(t, 50), p99: pct(t, 99) };
}

/**
 * Measures several variants in alternating rounds (A B C, B C A, …) so drift on a
 * shared machine (other load, GC, JIT) lands on all of them alike.
 */
async function measureInterleaved(variants: readonly (() => Promise<unknown>)[], n: number, warmup: number, rounds = 10): Promise<Stats[]> {
  for (const f of variants) for (let i = 0; i < warmup; i++) await f();
  const samples = variants.map(() => new Float64Array(n));
  const per = Math.floor(n / rounds);
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < variants.length; k++) {
      const v = (k + r) % variants.length;
      const f = variants[v] as () => Promise<unknown>;
      const t = samples[v] as Float64Array;
      for (let i = r * per; i < (r + 1) * per; i++) {
        const s = process.hrtime.bigint();
        await f();
        t[i] = Number(process.hrtime.bigint() - s) / 1e3;
      }
    }
  }
  return samples.map((t) => {
    const used = t.subarray(0, per * rounds).sort();
    return { p50: pct(used, 50), p99: pct(used, 99) };
  });
}

/** Same as {@link measure} for synchronous calls (no await between samples). */
function measureSync(n: number, warmup: number, f: (i: number) => unknown): Stats {
  for (let i = 0; i < warmup; i++) f(i);
  const t = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    f(i);
    t[i] = Number(process.hrtime.bigint() - s) / 1e3;
  }
  t.sort();
  return { p50: pct(t, 50), p99: pct(t, 99) };
}

/**
 * A bundle of `n` policies shaped like a real fleet's: the example policies,
 * then mostly permits and forbids on distinct tools, a fifth of them with
 * conditions on the call's params, some scoped to one agent.
 */
function generatedBundle(n: number, unscopedShare = 0): PolicyFile[] {
  const files: PolicyFile[] = [...EXAMPLE_POLICIES];
  const tools = Math.max(5, Math.ceil(n / 3)); // about three policies per tool: a permit, its conditions, a forbid
  const unscopedEvery = unscopedShare > 0 ? Math.round(1 / unscopedShare) : 0;
  for (let i = files.length; i < n; i++) {
    const id = `svc.t${i % tools}`;
    const action = `Action::"tool:${id}"`;
    let text: string;
    if (unscopedEvery > 0 && i % unscopedEvery === 0) {
      // Not scoped by action: applies to every call (e.g. "never touch /etc, whatever the tool").
      text = `@id("p${i}")\nforbid (principal, action, resource) when { context.params has path && context.params.path like "/etc/*" };`;
    } else {
      switch (i % 10) {
        case 0:
        case 1:
          text = `@id("p${i}")\nforbid (principal, action == ${action}, resource) when { context.params has size && context.params.size > ${1000 + i} };`;
          break;
        case 2:
          text = `@id("p${i}")\npermit (principal == Agent::"agent-${i % 13}", action == ${action}, resource) when { context.params has region && context.params.region == "eu-${i % 5}" };`;
          break;
        case 3:
        case 4:
          text = `@id("p${i}")\nforbid (principal, action == ${action}, resource);`;
          break;
        default:
          text = `@id("p${i}")\npermit (principal, action == ${action}, resource);`;
      }
    }
    files.push({ name: `p${i}.cedar`, text });
  }
  return files;
}

/** The calls decided in rotation: allowed, forbidden, unmatched (default deny), and conditioned ones. */
const CALLS: ToolCall[] = [
  { kind: "tool.echo", params: { text: "hello" } },
  { kind: "tool.shell", params: { command: "rm -rf /" } },
  { kind: "svc.t5", params: { size: 10 } },
  { kind: "svc.t3", params: { size: 5000, region: "eu-1" } },
  { kind: "tool.http_get", params: { endpoint: "https://api.example.com/" } },
];

function decisions(): void {
  const shapes: [number, number][] = [
    [10, 0],
    [100, 0],
    [1000, 0],
    [1000, 0.1],
  ];
  for (const [n, unscoped] of shapes) {
    const files = generatedBundle(n, unscoped);
    const label = unscoped > 0 ? `${n} policies, ${unscoped * 100}% not action-scoped` : `${n} policies`;
    // Cold: the engine's decision cache off, so every decision goes to Cedar (the worst case, and the budgeted one).
    const cold = policyOf(files, `generated-${n}`, createCedarCompiler({ decisionCacheSize: 0 }));
    const warm = policyOf(files, `generated-${n}`);
    const coldGate = interceptorFor(() => cold);
    const warmGate = interceptorFor(() => warm);
    const requests = CALLS.map((c) => ({
      principal: { type: "Agent", id: "test-agent" },
      action: `tool:${c.kind}`,
      resource: { type: "Tool", id: c.kind },
      context: { params: c.params, node: { id: "test-node" } },
    }));
    const engine = measureSync(DECISIONS, DECISION_WARMUP, (i) => cold.engine.evaluate(requests[i % requests.length] as (typeof requests)[number]));
    const decide = measureSync(DECISIONS, DECISION_WARMUP, (i) => coldGate.decide(CALLS[i % CALLS.length] as ToolCall));
    const cached = measureSync(DECISIONS, DECISION_WARMUP, (i) => warmGate.decide(CALLS[i % CALLS.length] as ToolCall));
    const verdict = n === 100 && unscoped === 0 ? (decide.p99 < BUDGET_US ? `budget p99 < ${BUDGET_US} µs: met` : `budget p99 < ${BUDGET_US} µs: MISSED`) : "";
    rows.push([`decision, ${label}: engine.evaluate, cache off`, ...us(engine), ""]);
    rows.push([`decision, ${label}: Interceptor.decide, cache off`, ...us(decide), verdict]);
    rows.push([`decision, ${label}: Interceptor.decide, default cache (repeated calls)`, ...us(cached), ""]);
    cold.engine.dispose();
    warm.engine.dispose();
  }
}

/** An interceptor that allows everything without asking a policy: the "no enforcement" peer for MCP. */
const bypass: ToolCallInterceptor = {
  async call(call, tool): Promise<InterceptResult> {
    if (!tool) throw new Error(`no tool ${call.kind}`);
    return { decision: "allow", policy_ref: "bypass", policies: [], ok: true, output: (await tool.run(call.params)).output };
  },
};

async function transports(): Promise<void> {
  const tools = builtinTools();
  const echo = tools.get("tool.echo");
  if (!echo) throw new Error("tool.echo missing");
  const policy = policyOf(generatedBundle(100), "generated-100");
  // Both servers check a real bearer token (a stat of the token file and a SHA-256 per request); the raw peer checks none.
  const authDir = await mkdtemp(join(tmpdir(), "bench-auth-"));
  const testTokens = await testAuth(authDir);
  const { auth } = testTokens;
  const headers = (): Record<string, string> => testTokens.headers();
  const enforced = createToolServer({ interceptor: interceptorFor(() => policy), tools, policy: () => policy, auth });
  const open = createToolServer({ interceptor: bypass, tools, auth });
  // The peer for HTTP: a plain fastify route, same body limit, calling the tool with no interceptor.
  const raw = Fastify({ bodyLimit: 1024 * 1024 });
  raw.post<{ Body: ToolCall }>("/v1/tool", async (req) => ({ decision: "allow", output: (await echo.run(req.body.params)).output }));
  const [enforcedBase, openBase, rawBase] = [await listen(enforced), await listen(open), await listen(raw)];
  const body = JSON.stringify({ kind: "tool.echo", params: { text: "hello" } });
  // node:http with one keep-alive socket: a lean client, so the rows show the server, not fetch's overhead.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const httpCall = (base: string) => {
    const { hostname, port } = new URL(base);
    return () =>
      new Promise<void>((resolve, reject) => {
        const req = request({ host: hostname, port, path: "/v1/tool", method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers() } }, (res) => {
          if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}`));
          res.on("data", () => undefined).on("end", resolve).on("error", reject);
        });
        req.on("error", reject);
        req.end(body);
      });
  };
  const mcpClient = async (base: string): Promise<Client> => {
    const client = new Client({ name: "bench", version: "1.0.0" });
    // The SDK client hands one long-lived AbortSignal to every fetch; undici only drops its per-request
    // listener at GC, so thousands of sequential calls pile listeners up (a client-side artifact that adds
    // noise). The bench client leaves the signal out; the server side is unchanged.
    const noSignalFetch: typeof fetch = (input, init) => fetch(input, { ...init, signal: null });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { fetch: noSignalFetch, requestInit: { headers: headers() } }));
    return client;
  };
  const [enforcedMcp, openMcp] = [await mcpClient(enforcedBase), await mcpClient(openBase)];
  const mcpCall = (client: Client) => async (): Promise<void> => {
    const r = await client.callTool({ name: "tool.echo", arguments: { text: "hello" } });
    if (r.isError === true) throw new Error("MCP call refused");
  };
  try {
    const direct = await measure(REQUESTS * 4, REQUEST_WARMUP, () => echo.run({ text: "hello" }));
    const [httpRaw, httpOpen, httpPolicy] = (await measureInterleaved([httpCall(rawBase), httpCall(openBase), httpCall(enforcedBase)], REQUESTS, REQUEST_WARMUP)) as [Stats, Stats, Stats];
    // The same comparison without a socket (fastify inject): the server-side cost alone.
    const payload = { kind: "tool.echo", params: { text: "hello" } };
    // inject's default Host is localhost:80; these servers are listening, so name the port they listen on (the Host check).
    const inject = (app: typeof open) => async (): Promise<void> => {
      const res = await app.inject({ method: "POST", url: "/v1/tool", payload, headers: { ...headers(), host: new URL(app === open ? openBase : enforcedBase).host } });
      if (res.statusCode !== 200) throw new Error(`inject ${res.statusCode}`);
    };
    const [injectOpen, injectPolicy] = (await measureInterleaved([inject(open), inject(enforced)], REQUESTS, REQUEST_WARMUP)) as [Stats, Stats];
    const [mcpOpen, mcpPolicy] = (await measureInterleaved([mcpCall(openMcp), mcpCall(enforcedMcp)], REQUESTS, REQUEST_WARMUP)) as [Stats, Stats];
    // What stateless /mcp pays per request before any message is handled: a fresh server and transport.
    const setup = await measure(REQUESTS, REQUEST_WARMUP, async () => {
      const server = createMcpServer({ interceptor: bypass, tools });
      await server.connect(new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true }));
      await server.close();
    });
    const delta = (a: Stats, b: Stats): string => {
      const d = a.p50 - b.p50;
      return `${d >= 0 ? "+" : "−"}${Math.abs(d).toFixed(1)} µs p50 vs peer`;
    };
    rows.push(["tool.echo called directly (tool.run)", ...us(direct), "limit"]);
    rows.push(["HTTP POST, raw fastify route calling the tool (no schema, no interceptor)", ...us(httpRaw), "peer"]);
    rows.push(["HTTP POST /v1/tool, same server (bearer token checked), interceptor bypassed", ...us(httpOpen), delta(httpOpen, httpRaw)]);
    rows.push(["HTTP POST /v1/tool with policy (100 policies)", ...us(httpPolicy), delta(httpPolicy, httpRaw)]);
    rows.push(["/v1/tool via fastify inject (no socket), interceptor bypassed", ...us(injectOpen), "peer"]);
    rows.push(["/v1/tool via fastify inject (no socket), with policy (100 policies)", ...us(injectPolicy), delta(injectPolicy, injectOpen)]);
    rows.push(["MCP tools/call at /mcp, interceptor bypassed", ...us(mcpOpen), "peer"]);
    rows.push(["MCP tools/call at /mcp with policy (100 policies)", ...us(mcpPolicy), delta(mcpPolicy, mcpOpen)]);
    rows.push(["of which: stateless per-request MCP server + transport setup", ...us(setup), ""]);
  } finally {
    await enforcedMcp.close();
    await openMcp.close();
    agent.destroy();
    await Promise.all([enforced.close(), open.close(), raw.close()]);
    policy.engine.dispose();
    await rm(authDir, { recursive: true, force: true });
  }
}

/**
 * What the decision log costs per call (Interceptor.call on tool.echo, no HTTP):
 * no sink; the WAL in async mode; the WAL in durable mode (the event is on disk
 * before the tool runs), one caller and 16 concurrent callers (group commit
 * shares the fsyncs). The limit for durable with one caller is the seed's fsync
 * sequence per append (bench/wal.ts measures it: ~0.85 ms on this disk).
 */
async function decisionLog(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "bench-decision-log-"));
  const policy = policyOf(generatedBundle(100), "generated-100");
  const echo = builtinTools().get("tool.echo");
  const call = { kind: "tool.echo", params: { text: "hello" } };
  const n = 2_000;
  try {
    const wal = await Wal.open(dir, { log: { warn: () => undefined, error: () => undefined } });
    const none = interceptorFor(() => policy);
    const asyncSink = new WalDecisionSink(wal, "async");
    const asyncGate = interceptorFor(() => policy, asyncSink);
    const durableGate = interceptorFor(() => policy, new WalDecisionSink(wal, "durable"));
    const noSink = await measure(n, 200, () => none.call(call, echo, "direct"));
    const asyncLog = await measure(n, 200, () => asyncGate.call(call, echo, "direct"));
    await asyncSink.flush();
    const durable1 = await measure(n, 50, () => durableGate.call(call, echo, "direct"));
    // 16 callers, each waiting for its answer before the next call: per-call latency and total throughput.
    const t0 = process.hrtime.bigint();
    const per: number[] = [];
    await Promise.all(Array.from({ length: 16 }, async () => {
      for (let i = 0; i < n / 4; i++) {
        const s = process.hrtime.bigint();
        await durableGate.call(call, echo, "direct");
        per.push(Number(process.hrtime.bigint() - s) / 1e3);
      }
    }));
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const sorted = Float64Array.from(per).sort();
    rows.push(["Interceptor.call, no decision log", ...us(noSink), "peer"]);
    rows.push(["Interceptor.call, decision_log = async (WAL append not awaited)", ...us(asyncLog), ""]);
    rows.push(["Interceptor.call, decision_log = durable, 1 caller", ...us(durable1), "limit: seed fsync sequence ≈ 850 µs"]);
    rows.push([`Interceptor.call, decision_log = durable, 16 callers (${Math.round(per.length / secs)} calls/s)`, ...us({ p50: pct(sorted, 50), p99: pct(sorted, 99) }), "group commit"]);
    await wal.close();
  } finally {
    policy.engine.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  decisions();
  await transports();
  await decisionLog();
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const load = loadavg().map((l) => l.toFixed(1)).join(" ");
  console.log(`machine: ${cpus().length} × ${cpu}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}; load average at the end ${load} (other work on the machine inflates p99s)`);
  console.log(`decisions: ${DECISIONS} per row after ${DECISION_WARMUP} warm-up; requests: ${REQUESTS} sequential per row after ${REQUEST_WARMUP} warm-up, keep-alive, loopback, compared rows interleaved in 10 rounds\n`);
  console.log("| measurement | p50 µs | p99 µs | note |\n|---|---|---|---|");
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
}

await main();
