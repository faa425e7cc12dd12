import type { Decision, LoadedPolicy } from "../policy/index.js";

/** A tool call as an agent makes it (the original's `{"kind","params"}`). */
export interface ToolCall {
  kind: string;
  params: Record<string, unknown>;
}

/** What a tool returns when it ran. */
export interface ToolOutput {
  output: unknown;
}

/** A built-in or proxied tool. `run` throws ToolError for bad params or refused targets (HTTP 400). */
export interface Tool {
  readonly name: string;
  readonly description: string;
  /** JSON Schema of params, offered to MCP clients. */
  readonly inputSchema: Record<string, unknown>;
  /** `context` (from the interceptor) lets the tool ask the policy about a follow-up of this call; without it, a tool must not act beyond `params`. */
  run(params: Record<string, unknown>, signal?: AbortSignal, context?: ToolCallContext): Promise<ToolOutput>;
  /**
   * A part of `params` this tool would act on as something other than what the policy reads
   * (`tool.http_get`: an endpoint it would fetch under another spelling), with its path; asked
   * by the interceptor before the decision, so such a call is refused (400) and recorded as a deny.
   */
  unfaithful?(params: Record<string, unknown>): { path: string; problem: string } | undefined;
}

/** A decision about one follow-up of an allowed call. */
export interface FollowUpDecision {
  decision: Decision;
  policy_ref: string;
  reason: string;
  policies: string[];
}

/** What the interceptor hands a running tool. */
export interface ToolCallContext {
  /**
   * Decides the same tool (same principal and action) with these params, as a
   * new call would be decided, and records the decision event; for a tool
   * about to act beyond the params it was allowed with (a redirect's new URL).
   */
  redecide(params: Record<string, unknown>): Promise<FollowUpDecision>;
}

/** Where the interceptor finds the policy in force; undefined means none loaded (deny all). */
export type PolicySource = () => LoadedPolicy | undefined;

/** The decision for one call, before (and independent of) running the tool. */
export interface InterceptDecision {
  decision: Decision;
  policy_ref: string;
  /** Policies that determined the decision (matching forbids on deny, permits on allow, erroring policies on an error deny). */
  policies: string[];
  /** Why: `permitted by …`, `forbidden by …`, `no permit matched`, `evaluation error: …`, or the no-policy reason. */
  reason: string;
  errors: string[];
  /** Time spent deciding (policy lookup + engine), in microseconds. */
  latency_us: number;
  /** Set when the params were refused as not representable for the policy (the call answers 400). */
  input_problem?: { path: string; problem: string };
}

/** One decision, as handed to telemetry (the WAL's sink records it). */
export interface DecisionEvent extends InterceptDecision {
  type: "ai.policy.decision";
  timestamp: string;
  tool: string;
  /** "http" | "mcp" | "direct" */
  transport: string;
  /** Set on the decision about a follow-up of an allowed call (a redirect hop of tool.http_get), not a call of its own. */
  follow_up?: true;
  /** The agent the call was decided for: the Cedar principal `Agent::"<agent_id>"`. */
  agent_id: string;
  /** The id of the bearer token that authenticated the call (HTTP and /mcp), never the token. */
  token_id?: string;
}

/**
 * What became of an allowed call (`ai.tool.result`): the tool ran and
 * answered (`ok: true`), or failed / did not exist (`ok: false` with the
 * error's stable code). Never the tool's output or params: counted by the
 * control plane's behaviour gates (tool error rate), not an audit of content.
 */
export interface ToolResultEvent {
  type: "ai.tool.result";
  timestamp: string;
  tool: string;
  ok: boolean;
  error_code?: string;
  /** Time the tool took, in milliseconds. */
  duration_ms: number;
  transport: string;
  agent_id: string;
  policy_ref: string;
}

/**
 * Who made a call, as the tool server authenticated it (the token's agent).
 * Absent (stdio MCP, direct calls): the interceptor's configured principal.
 */
export interface Caller {
  agentId: string;
  tokenId?: string;
}

export interface DecisionSink {
  /**
   * Records one decision event. A sink that returns a promise is *durable*:
   * the interceptor waits for it before the tool runs or the answer goes out,
   * and if it rejects, an allow becomes a deny (no record, no action).
   */
  record(event: DecisionEvent): void | Promise<void>;
  /**
   * Records what an allowed call came to. Optional; best effort: the
   * interceptor never waits for it (the answer is already decided), and a
   * failure is only counted.
   */
  recordResult?(event: ToolResultEvent): void | Promise<void>;
}

/** The interceptor's answer for one call. */
export type InterceptResult =
  | { decision: "deny"; policy_ref: string; reason: string; policies: string[] }
  | { decision: "allow"; policy_ref: string; policies: string[]; ok: true; output: unknown }
  | { decision: "allow"; policy_ref: string; policies: string[]; ok: false; error: { code: string; message: string } };
