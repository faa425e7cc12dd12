import type { Readable } from "node:stream";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport, getDefaultEnvironment } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { ErrorCode, McpError } from "@modelcontextprotocol/sdk/types.js";
import type { CallToolResult, Tool as McpTool } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { fieldProblems, RUNTIME_VERSION, messageOf, redactUrl } from "../lib/index.js";
import { createLogger } from "../observability/index.js";
import { RuntimeError } from "./errors.js";
import { isLoopbackHost } from "./listen.js";
import { markMcpContent } from "./mcp-server.js";
import type { Tool, ToolOutput } from "./types.js";

/** One upstream MCP server in the runtime config: a stdio child (`command`) or a Streamable HTTP endpoint (`url`). */
export interface UpstreamConfig {
  /** Prefix of its tools: upstream tool `add` of `up` is offered as `up.add` (policy action `tool:up.add`). */
  name: string;
  /** argv of a child process speaking MCP on stdio. */
  command?: string[];
  /** Streamable HTTP endpoint. */
  url?: string;
  /** For `url`: the environment variable holding the bearer token to send (another runtime's `/mcp` needs one); never the token itself in the config. */
  token_env?: string;
  /** Extra environment for a `command` child (on top of the SDK's safe default: HOME, PATH, USER, …). */
  env?: Record<string, string>;
}

/** Options of {@link connectUpstreams}. */
export interface UpstreamOptions {
  /** Deadline for connecting and listing tools, per upstream. Default 10 s. */
  connectTimeoutMs?: number;
  /** Deadline for one proxied call. Default 60 s. */
  callTimeoutMs?: number;
  /**
   * Where an upstream's failure details go (its command line or URL, the error, its stderr tail):
   * the operator's log, never the caller's answer. Default: the runtime's redacting logger on stderr.
   */
  log?: UpstreamLog;
}

/** The part of a (pino) logger an upstream uses. */
export interface UpstreamLog {
  warn(obj: Record<string, unknown>, msg: string): void;
}

/** The connected upstreams: their tools (already prefixed), per-upstream health, and shutdown. */
export interface Upstreams {
  readonly tools: ReadonlyMap<string, Tool>;
  status(): { name: string; connected: boolean; tools: number; last_error?: string }[];
  /** Closes every client; stdio children get stdin EOF, then SIGTERM, then SIGKILL. */
  close(): Promise<void>;
}

const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
const STDERR_TAIL = 4096;

/** One `[[upstreams]]` entry of the runtime config (names are checked for uniqueness by {@link parseUpstreamConfigs}). */
export const upstreamSchema = z
  .strictObject({
    name: z.string().regex(NAME_RE, "letters, digits, _ and - only (it prefixes tool names, so no dots)"),
    command: z.array(z.string().min(1)).min(1).optional(),
    url: z.url({ protocol: /^https?$/ }).optional(),
    env: z.record(z.string(), z.string()).optional(),
    token_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name").optional(),
  })
  .refine((c) => (c.command === undefined) !== (c.url === undefined), { message: "give exactly one of command or url" })
  // A bearer token in clear text on the network is anyone's who can see the traffic: https, or loopback.
  .refine((c) => c.token_env === undefined || c.url === undefined || !cleartextRemote(c.url), {
    message: "token_env sends a bearer token: the url must be https, or http to a loopback address (127.0.0.1, localhost, [::1])",
    path: ["token_env"],
  });

function cleartextRemote(url: string): boolean {
  const u = new URL(url);
  return u.protocol === "http:" && !isLoopbackHost(u.hostname);
}

/** Validates upstream configs (names unique); throws RUNTIME_CONFIG_INVALID naming each bad field. */
export function parseUpstreamConfigs(input: unknown): UpstreamConfig[] {
  const parsed = z.array(upstreamSchema).safeParse(input);
  if (!parsed.success) {
    const list = fieldProblems(parsed.error.issues).map((p) => `upstreams${p.field.startsWith("[") ? "" : "."}${p.field}: ${p.problem}`);
    throw new RuntimeError("RUNTIME_CONFIG_INVALID", `invalid upstream config: ${list.join("; ")}`);
  }
  const seen = new Set<string>();
  for (const c of parsed.data) {
    if (seen.has(c.name)) throw new RuntimeError("RUNTIME_CONFIG_INVALID", `invalid upstream config: two upstreams are named ${c.name}`);
    seen.add(c.name);
  }
  return parsed.data;
}

/**
 * Connects to each upstream MCP server as a client, lists its tools, and
 * offers each as a {@link Tool} named `<name>.<tool>` whose `run` calls the
 * upstream. Serving them through the tool server puts every proxied call
 * behind the same interceptor as the built-ins. An upstream that cannot be
 * reached fails the whole call with UPSTREAM_UNAVAILABLE (after closing the
 * ones already connected); an upstream that dies later is reconnected on the
 * next call, and calls fail with UPSTREAM_UNAVAILABLE while it is down.
 *
 * ### Examples
 * ```ts
 * const ups = await connectUpstreams([{ name: "fs", command: ["node", "fs-server.mjs"] }]);
 * const app = createToolServer({ interceptor, tools: toolRegistry(builtinTools(), ups.tools) });
 * ```
 */
export async function connectUpstreams(configs: readonly UpstreamConfig[], opts: UpstreamOptions = {}): Promise<Upstreams> {
  const valid = parseUpstreamConfigs(configs);
  const connected: UpstreamConnection[] = [];
  const log = opts.log ?? createLogger({ name: "autonomy.runtime.upstream", level: "warn" });
  try {
    for (const c of valid) {
      const u = new UpstreamConnection(c, opts.connectTimeoutMs ?? 10_000, opts.callTimeoutMs ?? 60_000, log);
      connected.push(u);
      await u.connect();
    }
  } catch (e) {
    await Promise.allSettled(connected.map((u) => u.close()));
    throw e;
  }
  const tools = new Map<string, Tool>();
  for (const u of connected) for (const t of await u.tools()) tools.set(t.name, t);
  return {
    tools,
    status: () => connected.map((u) => u.status()),
    close: async () => {
      await Promise.allSettled(connected.map((u) => u.close()));
    },
  };
}

class UpstreamConnection {
  readonly #config: UpstreamConfig;
  readonly #connectTimeoutMs: number;
  readonly #callTimeoutMs: number;
  readonly #log: UpstreamLog;
  #client: Client | undefined;
  #connecting: Promise<Client> | undefined;
  #listed: McpTool[] = [];
  #lastError: string | undefined;
  #stderrTail = "";
  #closed = false;

  constructor(config: UpstreamConfig, connectTimeoutMs: number, callTimeoutMs: number, log: UpstreamLog) {
    this.#config = config;
    this.#log = log;
    this.#connectTimeoutMs = connectTimeoutMs;
    this.#callTimeoutMs = callTimeoutMs;
  }

  get name(): string {
    return this.#config.name;
  }

  status(): { name: string; connected: boolean; tools: number; last_error?: string } {
    return { name: this.name, connected: this.#client !== undefined, tools: this.#listed.length, ...(this.#lastError !== undefined ? { last_error: this.#lastError } : {}) };
  }

  /** Connects (once at a time) and lists tools. */
  connect(): Promise<Client> {
    if (this.#closed) return Promise.reject(this.#unavailable("it was closed"));
    if (this.#client) return Promise.resolve(this.#client);
    this.#connecting ??= this.#connect().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  async #connect(): Promise<Client> {
    const client = new Client({ name: "autonomyops-runtime", version: RUNTIME_VERSION });
    const transport = this.#transport();
    client.onclose = () => {
      if (this.#client === client) {
        this.#client = undefined;
        this.#lastError = `disconnected${this.#stderrSuffix()}`;
      }
    };
    try {
      await client.connect(transport, { timeout: this.#connectTimeoutMs });
      const listed: McpTool[] = [];
      let cursor: string | undefined;
      do {
        const page = await client.listTools(cursor === undefined ? {} : { cursor }, { timeout: this.#connectTimeoutMs });
        listed.push(...page.tools);
        cursor = page.nextCursor;
      } while (cursor !== undefined && listed.length < 10_000);
      if (this.#listed.length === 0) this.#listed = listed;
      this.#client = client;
      this.#lastError = undefined;
      return client;
    } catch (e) {
      await client.close().catch(() => undefined);
      const why = `${messageOf(e)}${this.#stderrSuffix()}`;
      this.#lastError = why;
      throw this.#unavailable(why);
    }
  }

  #transport(): Transport {
    const c = this.#config;
    if (c.url !== undefined) {
      const token = c.token_env !== undefined ? process.env[c.token_env] : undefined;
      return new StreamableHTTPClientTransport(new URL(c.url), token ? { requestInit: { headers: { authorization: `Bearer ${token}` } } } : undefined);
    }
    const [command, ...args] = c.command ?? [];
    const transport = new StdioClientTransport({ command: command ?? "", args, env: { ...getDefaultEnvironment(), ...c.env }, stderr: "pipe" });
    // Keep the tail of the child's stderr for error messages; never let it block the child.
    (transport.stderr as Readable | null)?.on("data", (b: Buffer) => {
      this.#stderrTail = (this.#stderrTail + b.toString("utf8")).slice(-STDERR_TAIL);
    });
    return transport;
  }

  #stderrSuffix(): string {
    const tail = this.#stderrTail.trim();
    return tail === "" ? "" : ` (stderr: ${tail.split("\n").slice(-3).join(" | ")})`;
  }

  /**
   * The caller's error names the upstream and nothing else: its command line can hold secrets
   * (`--api-key=…`) and its stderr anything. Those go to the operator's log (URL redacted).
   */
  #unavailable(why: string): RuntimeError {
    const where = this.#config.url !== undefined ? { url: redactUrl(this.#config.url) } : { command: this.#config.command ?? [] };
    this.#log.warn({ upstream: this.name, ...where, reason: why }, "UPSTREAM_UNAVAILABLE");
    return new RuntimeError("UPSTREAM_UNAVAILABLE", `upstream MCP server ${this.name} is unavailable (the runtime's log says why)`, { details: { upstream: this.name } });
  }

  async tools(): Promise<Tool[]> {
    await this.connect();
    return this.#listed.map((t) => this.#proxy(t));
  }

  #proxy(t: McpTool): Tool {
    const upstreamName = t.name;
    const name = `${this.name}.${upstreamName}`;
    return Object.freeze({
      name,
      description: t.description ?? `${upstreamName} (from upstream ${this.name})`,
      inputSchema: Object.freeze({ ...t.inputSchema }),
      run: (params: Record<string, unknown>, signal?: AbortSignal): Promise<ToolOutput> => this.#call(name, upstreamName, params, signal),
    });
  }

  async #call(name: string, upstreamName: string, params: Record<string, unknown>, signal?: AbortSignal): Promise<ToolOutput> {
    const client = await this.connect();
    let result: CallToolResult;
    try {
      result = (await client.callTool({ name: upstreamName, arguments: params }, undefined, {
        timeout: this.#callTimeoutMs,
        ...(signal ? { signal } : {}),
      })) as CallToolResult;
    } catch (e) {
      const message = messageOf(e);
      const code = e instanceof McpError ? e.code : undefined;
      if (code === (ErrorCode.InvalidParams as number)) throw new RuntimeError("TOOL_PARAMS_INVALID", `${name}: ${message}`, { cause: e });
      if (code !== undefined && code !== (ErrorCode.ConnectionClosed as number) && code !== (ErrorCode.RequestTimeout as number)) {
        throw new RuntimeError("TOOL_FAILED", `${name}: ${message}`, { cause: e });
      }
      throw this.#unavailable(`${upstreamName}: ${message}${this.#stderrSuffix()}`);
    }
    if (result.isError === true) {
      const text = result.content
        .filter((c): c is { type: "text"; text: string } => c.type === "text")
        .map((c) => c.text)
        .join("\n")
        .slice(0, 2000);
      // SDK servers report their own argument validation as an error result carrying the JSON-RPC code.
      const code = text.startsWith(`MCP error ${ErrorCode.InvalidParams}:`) ? "TOOL_PARAMS_INVALID" : "TOOL_FAILED";
      throw new RuntimeError(code, `${name}: upstream reported an error: ${text || "(no text)"}`);
    }
    const output: { content: CallToolResult["content"]; structuredContent?: Record<string, unknown> } = { content: result.content };
    if (result.structuredContent !== undefined) output.structuredContent = result.structuredContent;
    return { output: markMcpContent(output) };
  }

  async close(): Promise<void> {
    this.#closed = true;
    const client = this.#client ?? (await this.#connecting?.catch(() => undefined));
    this.#client = undefined;
    await client?.close();
  }
}
