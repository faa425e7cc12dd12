import process from "node:process";
import type { Readable, Writable } from "node:stream";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import type { CallToolResult, ListToolsResult } from "@modelcontextprotocol/sdk/types.js";
import { AutonomyError, RUNTIME_VERSION, problemFromError } from "../lib/index.js";
import { faithfulLines } from "./faithful-stdio.js";
import { asToolRegistry } from "./tools/registry.js";
import type { ToolSource } from "./tools/registry.js";
import type { Caller, InterceptResult, Tool, ToolCall } from "./types.js";

/** How a call reached the runtime (recorded with each decision). */
export type CallTransport = "http" | "mcp" | "direct";

/**
 * The part of the runtime's `Interceptor` the servers use: decide, and run the
 * tool only when allowed. Declared structurally so a server can be built over
 * any gate with this shape.
 */
export interface ToolCallInterceptor {
  /**
   * `signal`: the caller went away (MCP cancellation, HTTP client disconnect); the running tool is told to stop.
   * `caller`: the agent the transport authenticated (a bearer token's agent); absent for stdio, whose caller is the process's configured identity.
   */
  call(call: ToolCall, tool: Tool | undefined, transport: CallTransport, signal?: AbortSignal, caller?: Caller): Promise<InterceptResult>;
}

/** Options of {@link createMcpServer}. */
export interface McpServerOptions {
  interceptor: ToolCallInterceptor;
  tools: ToolSource;
  /** The authenticated caller of every call on this server (HTTP `/mcp` builds one server per request); absent on stdio. */
  caller?: Caller;
  /** Reported in `initialize` (default `autonomyops-runtime`). */
  name?: string;
  /**
   * Told about an unexpected error of a tools/call (the client only gets a generic
   * message and the stable code): the runtime logs it. Default: nothing.
   */
  onInternalError?: (err: unknown) => void;
}

/** JSON-RPC code of a tools/call that threw a domain (4xx) error: the implementation-defined server-error range. */
export const MCP_DOMAIN_ERROR = -32000;
/** JSON-RPC "internal error". */
export const MCP_INTERNAL_ERROR = -32603;
const INTERNAL_MESSAGE = "internal error; the call was not run (see the runtime log)";

/**
 * What the SDK sends for a thrown error is `{ code, message, data }` read off the
 * error: this one carries only what {@link problemFromError} lets through (a domain
 * error's message; for anything else a generic text), never the raw exception text.
 */
class McpCallError extends Error {
  readonly code: number;
  readonly data: { code: string; status: number; path?: string };
  constructor(code: number, message: string, data: { code: string; status: number; path?: string }) {
    super(message);
    this.name = "McpCallError";
    this.code = code;
    this.data = data;
  }
}

/** The one error mapping (problemFromError) rendered as a JSON-RPC error. */
export function mcpCallError(err: unknown): Error {
  const p = problemFromError(err);
  if (p.status >= 500) return new McpCallError(MCP_INTERNAL_ERROR, INTERNAL_MESSAGE, { code: p.code, status: p.status });
  // An input refused as not representable names where (`params.force`), as on /v1/tool.
  const path = err instanceof AutonomyError && typeof err.details["path"] === "string" ? err.details["path"] : undefined;
  return new McpCallError(MCP_DOMAIN_ERROR, p.detail, { code: p.code, status: p.status, ...(path !== undefined ? { path } : {}) });
}

/** `_meta` keys carried by every tools/call result. */
export const MCP_META_DECISION = "autonomyops/decision";
export const MCP_META_POLICY_REF = "autonomyops/policy_ref";

const passthrough = new WeakSet<object>();

/**
 * Marks a tool output as an MCP result to hand back as it is (content blocks
 * and structured content) instead of wrapping it as JSON text. Upstream
 * proxies use it so a proxied tool's content reaches the agent unchanged.
 * @internal
 */
export function markMcpContent<T extends { content: unknown[] }>(output: T): T {
  passthrough.add(output);
  return output;
}

const INSTRUCTIONS =
  "Every tools/call is checked against the node's policy before anything runs. A refusal comes back as a result with isError: true " +
  'whose text is JSON {"decision":"deny","policy_ref",...,"reason"}; retrying will not change it.';

/**
 * An MCP server (the SDK's low-level `Server`) whose tools/list lists every
 * tool and whose tools/call goes through the interceptor (transport `mcp`).
 * A denied call never runs: it returns `isError: true` with a structured
 * refusal. The low-level Server is used rather than `McpServer` because the
 * tools are described by JSON Schema (and some are proxied), and because the
 * policy must see every call before any argument validation happens.
 *
 * ### Examples
 * ```ts
 * const server = createMcpServer({ interceptor, tools: builtinTools() });
 * await server.connect(new StdioServerTransport());
 * ```
 */
export function createMcpServer(opts: McpServerOptions): Server {
  const tools = asToolRegistry(opts.tools);
  const server = new Server(
    { name: opts.name ?? "autonomyops-runtime", version: RUNTIME_VERSION },
    { capabilities: { tools: { listChanged: false } }, instructions: INSTRUCTIONS },
  );
  server.setRequestHandler(ListToolsRequestSchema, (): ListToolsResult => ({
    tools: tools.list().map((t) => ({ name: t.name, description: t.description, inputSchema: t.inputSchema as ListToolsResult["tools"][number]["inputSchema"] })),
  }));
  server.setRequestHandler(CallToolRequestSchema, async (req, extra): Promise<CallToolResult> => {
    const { name, arguments: args } = req.params;
    let result: InterceptResult;
    try {
      result = await opts.interceptor.call({ kind: name, params: args ?? {} }, tools.get(name), "mcp", extra.signal, opts.caller);
    } catch (e) {
      const mapped = mcpCallError(e);
      if ((mapped as McpCallError).code === MCP_INTERNAL_ERROR) opts.onInternalError?.(e);
      throw mapped;
    }
    return toCallToolResult(result);
  });
  return server;
}

/** Maps an interceptor result to an MCP tools/call result. */
export function toCallToolResult(r: InterceptResult): CallToolResult {
  const _meta = { [MCP_META_DECISION]: r.decision, [MCP_META_POLICY_REF]: r.policy_ref };
  if (r.decision === "deny") {
    const refusal = { decision: "deny", policy_ref: r.policy_ref, reason: r.reason, policies: r.policies };
    return { isError: true, content: [{ type: "text", text: JSON.stringify(refusal) }], structuredContent: refusal, _meta };
  }
  if (!r.ok) {
    const failure = { decision: "allow", policy_ref: r.policy_ref, error: r.error };
    return { isError: true, content: [{ type: "text", text: JSON.stringify(failure) }], structuredContent: failure, _meta };
  }
  const out = r.output;
  if (typeof out === "object" && out !== null && passthrough.has(out)) {
    return { ...(out as CallToolResult), _meta };
  }
  const structured = typeof out === "object" && out !== null && !Array.isArray(out) ? (out as Record<string, unknown>) : { output: out };
  return { content: [{ type: "text", text: JSON.stringify(out ?? null) }], structuredContent: structured, _meta };
}

/** Options of {@link serveMcpStdio}. */
export interface McpStdioOptions extends McpServerOptions {
  /** Defaults: process.stdin / process.stdout. */
  stdin?: Readable;
  stdout?: Writable;
}

/**
 * Serves the tools over MCP on stdio (`autonomy runtime start --stdio`), the
 * same policy-enforcing server as the HTTP `/mcp` endpoint. Resolves once
 * connected; `close()` ends the session.
 *
 * ### Examples
 * ```ts
 * const served = await serveMcpStdio({ interceptor, tools });
 * process.on("SIGTERM", () => void served.close());
 * ```
 */
export async function serveMcpStdio(opts: McpStdioOptions): Promise<{ server: Server; close: () => Promise<void> }> {
  const server = createMcpServer(opts);
  const stdout = opts.stdout ?? process.stdout;
  // Messages with duplicate keys or depth bombs are answered with an error here, never parsed last-one-wins by the SDK.
  const stdin = faithfulLines(opts.stdin ?? process.stdin, (line) => void stdout.write(line));
  const transport = new StdioServerTransport(stdin, stdout);
  await server.connect(transport);
  return { server, close: () => server.close() };
}
