import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { LivePolicy } from "../policy/index.js";
import type { LivePolicyEvent } from "../policy/index.js";
import type { RuntimeConfig } from "./config.js";
import { JsonlSink } from "./decision-sinks.js";
import { createToolServer } from "./http-server.js";
import { Interceptor } from "./interceptor.js";
import { serveMcpStdio } from "./mcp-server.js";
import { builtinTools, toolRegistry } from "./tools/index.js";
import { connectUpstreams } from "./upstream.js";
import type { DecisionSink } from "./types.js";

export interface StartRuntimeOptions {
  stateRoot: string;
  config: RuntimeConfig;
  /** host:port for HTTP (`POST /v1/tool`, `/mcp`, health); port 0 picks a free one. */
  listen?: { host: string; port: number };
  /** Also serve MCP on this process's stdin/stdout. */
  stdio?: boolean;
  sink?: DecisionSink;
  onPolicyEvent?: (e: LivePolicyEvent) => void;
  pollMs?: number;
}

export interface RunningRuntime {
  interceptor: Interceptor;
  policy: LivePolicy;
  server?: FastifyInstance;
  /** `http://host:port` when HTTP is served. */
  url?: string;
  close(): Promise<void>;
}

/**
 * The composition root of a node's runtime: the live policy from the state
 * root, the interceptor, built-in and upstream tools, and the transports
 * (HTTP + MCP Streamable HTTP, optionally MCP stdio). Decisions are appended
 * to `{state_root}/telemetry/decisions.jsonl` until the WAL takes over.
 */
export async function startRuntime(opts: StartRuntimeOptions): Promise<RunningRuntime> {
  const policy = new LivePolicy(opts.stateRoot, { ...(opts.onPolicyEvent ? { onEvent: opts.onPolicyEvent } : {}), ...(opts.pollMs ? { pollMs: opts.pollMs } : {}) });
  await policy.start();
  let sink = opts.sink;
  let ownSink: JsonlSink | undefined;
  if (!sink) {
    await mkdir(join(opts.stateRoot, "telemetry"), { recursive: true });
    sink = ownSink = new JsonlSink(join(opts.stateRoot, "telemetry", "decisions.jsonl"));
  }
  const interceptor = new Interceptor({ policy: policy.current, principal: { type: "Agent", id: opts.config.agentId }, node: opts.config.node, sink });
  const upstreams = await connectUpstreams(opts.config.upstreams);
  const tools = toolRegistry(builtinTools({ allowedDomains: opts.config.allowedDomains }), upstreams.tools);
  const closers: (() => Promise<void>)[] = [];
  const running: RunningRuntime = { interceptor, policy, close: async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    await upstreams.close();
    policy.stop();
    ownSink?.close();
  } };
  if (opts.listen) {
    const server = createToolServer({ interceptor, tools, policy: policy.current });
    const address = await server.listen({ host: opts.listen.host, port: opts.listen.port });
    closers.push(() => server.close());
    running.server = server;
    running.url = address;
  }
  if (opts.stdio) {
    const served = await serveMcpStdio({ interceptor, tools });
    closers.push(served.close);
  }
  return running;
}
