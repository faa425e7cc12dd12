import { performance } from "node:perf_hooks";
import { decisionReason, findUnrepresentable } from "../policy/index.js";
import type { DecisionRequest, EngineDecision, EntityRef, InputProblem } from "../policy/index.js";
import { RuntimeError } from "./errors.js";
import type { Caller, DecisionEvent, DecisionSink, InterceptResult, PolicySource, Tool, ToolCall, ToolCallContext, InterceptDecision } from "./types.js";
import { isoTime, messageOf, systemClock } from "../lib/index.js";
import type { Clock } from "../lib/index.js";

/** How a call reached the runtime (recorded with each decision). */
type Transport = "http" | "mcp" | "direct";

/** `policy_ref` reported when no policy is loaded. */
const NO_POLICY_REF = "none";
const NO_POLICY_REASON = "no policy loaded: deny all";

/** Options of {@link Interceptor}. */
export interface InterceptorOptions {
  /** Asked on every call for the policy in force; `undefined` (nothing loaded) denies everything. */
  policy: PolicySource;
  /** The agent the calls are made for when the caller is not authenticated per call (stdio MCP, direct): the Cedar principal (`Agent::"<id>"`). */
  principal: EntityRef;
  /** Facts about this node, offered to policies as `context.node`. */
  node: Record<string, unknown>;
  /** Receives one {@link DecisionEvent} per call; a sink that throws changes nothing. */
  sink?: DecisionSink;
  /** Clock for event timestamps. Default {@link systemClock}. */
  clock?: Clock;
}


/**
 * The policy gate in front of every tool: each call is turned into a decision
 * request (`principal`, action `tool:<kind>`, resource `Tool::"<kind>"`,
 * context `{ params, node }`), decided by the loaded policy engine, recorded,
 * and only then, if allowed, run.
 *
 * Fail closed, deny wins, no override. With no policy loaded every call is
 * denied; an engine deny (a matching forbid, no matching permit, or any
 * evaluation error) is final and the tool is never invoked. There is no
 * override path at all: nothing in the call (params, the transport's headers,
 * the tool or runtime configuration) is consulted except as policy context,
 * and no option of this class can turn a deny into an allow. A sink or clock
 * that throws changes nothing but a failure count. With a
 * durable sink (one whose `record` returns a promise, like the telemetry WAL)
 * the decision event is durable before the tool runs and before the answer
 * goes out; when it cannot be recorded an allow becomes a deny.
 *
 * The params are copied before the decision, so the params the tool receives
 * are the params the policy saw, even while a durable record is awaited; and
 * params holding anything the policy would see differently from the tool
 * (null, unsafe integers, a key given twice, …) are refused, never
 * converted (`INPUT_NOT_REPRESENTABLE`, recorded as a deny). A tool that acts
 * again for the same call (`tool.http_get` following a redirect) asks through
 * the {@link ToolCallContext} it is given: a new decision, recorded like this one.
 *
 * ### Examples
 * ```ts
 * import { Interceptor, MemorySink } from "./index.js";
 * const sink = new MemorySink();
 * const gate = new Interceptor({ policy: live.current, principal: { type: "Agent", id: "agent-1" }, node: { id: "node-7" }, sink });
 * const r = await gate.call({ kind: "tool.echo", params: { text: "hi" } }, echoTool(), "direct");
 * // r.decision === "allow" && r.ok → r.output is { text: "hi" }
 * ```
 */
export class Interceptor {
  readonly #policy: PolicySource;
  readonly #principal: EntityRef;
  readonly #node: Record<string, unknown>;
  readonly #sink: DecisionSink | undefined;
  readonly #clock: Clock;
  #sinkFailures = 0;

  constructor(opts: InterceptorOptions) {
    this.#policy = opts.policy;
    this.#principal = Object.freeze({ type: opts.principal.type, id: opts.principal.id });
    this.#node = opts.node;
    this.#sink = opts.sink;
    this.#clock = opts.clock ?? systemClock;
  }

  /** How many times the sink threw (the events it lost); for status output. */
  get sinkFailures(): number {
    return this.#sinkFailures;
  }

  /**
   * Decides a call without running anything and without recording an event
   * (for `autonomy policy test` and benchmarks). Never throws: any failure is
   * a deny.
   */
  decide(call: ToolCall, caller?: Caller, tool?: Tool): InterceptDecision {
    const start = performance.now();
    const d = this.#decide(call, this.#principalOf(caller), tool);
    return { ...d, latency_us: Math.round((performance.now() - start) * 10_000) / 10 };
  }

  /**
   * Decides the call, records one decision event, and runs the tool only when
   * allowed. Denied: `{decision: "deny"}` and the tool never runs. Allowed but
   * no such tool: `ok: false` with `TOOL_UNKNOWN`. Allowed and the tool
   * throws: `ok: false` with the error's RuntimeError code, else `TOOL_FAILED`.
   *
   * @throws RuntimeError `INPUT_NOT_REPRESENTABLE` (HTTP 400) when the params
   * hold a value the policy cannot see exactly as the tool would get it
   * (null, an integer beyond ±(2^53−1), a lone surrogate, …; the path
   * is named). The refusal is recorded as a deny first, and nothing runs.
   *
   * `caller` (the agent a bearer token authenticated) is the principal of this
   * one call and of its follow-ups; without it, the configured principal.
   */
  async call(call: ToolCall, tool: Tool | undefined, transport: Transport, signal?: AbortSignal, caller?: Caller): Promise<InterceptResult> {
    const snapshot = snapshotCall(call);
    const decided = await this.#decideAndRecord(snapshot, transport, caller, false, tool);
    if (decided.input_problem) throw notRepresentable(decided.input_problem);
    const d = decided;
    if (d.decision !== "allow") return { decision: "deny", policy_ref: d.policy_ref, reason: d.reason, policies: d.policies };
    const allowed = { decision: "allow" as const, policy_ref: d.policy_ref, policies: d.policies };
    if (!tool) {
      this.#recordResult(snapshot, d, transport, caller, this.#clock.now(), "TOOL_UNKNOWN");
      return { ...allowed, ok: false, error: { code: "TOOL_UNKNOWN", message: `no tool named ${JSON.stringify(call.kind)} on this runtime` } };
    }
    // A tool that acts again on the caller's behalf (http_get following a redirect) asks first, as this call did.
    const context: ToolCallContext = {
      redecide: async (params) => {
        const hop = await this.#decideAndRecord(snapshotCall({ kind: snapshot.kind, params }), transport, caller, true);
        return { decision: hop.decision, policy_ref: hop.policy_ref, reason: hop.reason, policies: hop.policies };
      },
    };
    const started = this.#clock.now();
    try {
      const { output } = await tool.run(snapshot.params, signal, context);
      this.#recordResult(snapshot, d, transport, caller, started, undefined);
      return { ...allowed, ok: true, output };
    } catch (e) {
      const code = e instanceof RuntimeError ? e.code : "TOOL_FAILED";
      this.#recordResult(snapshot, d, transport, caller, started, code);
      return { ...allowed, ok: false, error: { code, message: messageOf(e) } };
    }
  }

  /** `ai.tool.result` for an allowed call that ran, best effort (never awaited: the answer does not wait on telemetry). */
  #recordResult(call: ToolCall, d: InterceptDecision, transport: Transport, caller: Caller | undefined, started: number, errorCode: string | undefined): void {
    if (!this.#sink?.recordResult) return;
    try {
      const now = this.#clock.now();
      const pending = this.#sink.recordResult({
        type: "ai.tool.result", timestamp: isoTime(this.#clock), tool: typeof call.kind === "string" ? call.kind : String(call.kind),
        ok: errorCode === undefined, ...(errorCode !== undefined ? { error_code: errorCode } : {}),
        duration_ms: Math.max(0, now - started), transport, agent_id: this.#principalOf(caller).id, policy_ref: d.policy_ref,
      });
      if (pending) pending.catch(() => void this.#sinkFailures++);
    } catch {
      this.#sinkFailures++;
    }
  }

  /** One decision, recorded; an allow that could not be recorded durably is a deny. */
  async #decideAndRecord(call: ToolCall, transport: Transport, caller: Caller | undefined, followUp = false, tool?: Tool): Promise<InterceptDecision> {
    const decided = this.decide(call, caller, tool);
    const recorded = await this.#record(call, decided, transport, followUp, caller);
    return recorded ? decided : unrecorded(decided);
  }

  #principalOf(caller: Caller | undefined): EntityRef {
    return caller ? { type: this.#principal.type, id: caller.agentId } : this.#principal;
  }

  #decide(call: ToolCall, principal: EntityRef, tool: Tool | undefined): Omit<InterceptDecision, "latency_us"> {
    let ref = NO_POLICY_REF;
    try {
      const loaded = this.#policy();
      if (!loaded) return { decision: "deny", policy_ref: NO_POLICY_REF, policies: [], reason: NO_POLICY_REASON, errors: [] };
      ref = loaded.ref;
      const invalid = invalidCall(call);
      if (invalid !== undefined) return { decision: "deny", policy_ref: ref, policies: [], reason: `invalid tool call: ${invalid}`, errors: [invalid] };
      // Refused, never coerced: the policy must judge exactly the value the tool will get.
      const unfaithful = findUnrepresentable(call.params, ["params"]) ?? tool?.unfaithful?.(call.params);
      if (unfaithful !== undefined) {
        const why = `INPUT_NOT_REPRESENTABLE: ${unfaithful.path}: ${unfaithful.problem}`;
        return { decision: "deny", policy_ref: ref, policies: [], reason: why, errors: [why], input_problem: unfaithful };
      }
      const request: DecisionRequest = {
        principal,
        action: `tool:${call.kind}`,
        resource: { type: "Tool", id: call.kind },
        context: { params: call.params, node: this.#node },
      };
      const e: EngineDecision = loaded.engine.evaluate(request);
      // Only an explicit, error-free allow allows; anything else (including a malformed answer) denies.
      const allow = e.decision === "allow" && Array.isArray(e.errors) && e.errors.length === 0;
      const policies = Array.isArray(e.policies) ? [...e.policies] : [];
      const errors = Array.isArray(e.errors) ? [...e.errors] : ["the policy engine gave a malformed answer"];
      if (allow) return { decision: "allow", policy_ref: ref, policies, reason: decisionReason({ decision: "allow", policies, errors: [] }), errors: [] };
      return { decision: "deny", policy_ref: ref, policies, reason: decisionReason({ decision: "deny", policies, errors }), errors };
    } catch (e) {
      const msg = `policy evaluation failed: ${messageOf(e)}`;
      return { decision: "deny", policy_ref: ref, policies: [], reason: msg, errors: [msg] };
    }
  }

  /** False only when a durable sink failed to record the event. */
  async #record(call: ToolCall, d: InterceptDecision, transport: Transport, followUp: boolean, caller: Caller | undefined): Promise<boolean> {
    if (!this.#sink) return true;
    let pending: Promise<void> | undefined;
    try {
      const event: DecisionEvent = {
        type: "ai.policy.decision",
        timestamp: isoTime(this.#clock),
        tool: typeof call.kind === "string" ? call.kind : String(call.kind),
        decision: d.decision,
        policy_ref: d.policy_ref,
        policies: d.policies,
        reason: d.reason,
        errors: d.errors,
        latency_us: d.latency_us,
        transport,
        ...(followUp ? { follow_up: true } : {}),
        agent_id: this.#principalOf(caller).id,
        ...(caller?.tokenId !== undefined ? { token_id: caller.tokenId } : {}),
      };
      pending = this.#sink.record(event) ?? undefined;
    } catch {
      // A best-effort sink (or the clock) failing changes nothing but the count.
      this.#sinkFailures++;
      return true;
    }
    if (!pending) return true;
    try {
      await pending;
      return true;
    } catch {
      this.#sinkFailures++;
      return false;
    }
  }
}

/** The refusal of a call whose params the policy could not see exactly (HTTP 400, the path named). */
function notRepresentable(p: InputProblem): RuntimeError {
  return new RuntimeError("INPUT_NOT_REPRESENTABLE", `params not representable for the policy: ${p.path}: ${p.problem}`, { details: { path: p.path } });
}

/** An allow whose event could not be recorded durably: refuse to act without the audit record. */
function unrecorded(d: InterceptDecision): InterceptDecision {
  if (d.decision !== "allow") return d;
  const reason = "the decision could not be recorded durably (telemetry WAL unavailable or full): no record, no action";
  return { ...d, decision: "deny", reason, errors: [reason] };
}

/** A deep copy of JSON-like params, so nothing the caller still holds can change them between decision and tool. */
function snapshotCall(call: ToolCall): ToolCall {
  if (!call || typeof call !== "object" || call.params === null || typeof call.params !== "object") return call;
  try {
    return { ...call, params: structuredClone(call.params) };
  } catch {
    // Not cloneable (functions, symbols …): not a tool call a policy can judge; the decision denies it.
    return { ...call, params: null as unknown as ToolCall["params"] };
  }
}

/** A call the policy cannot be asked about (not a string kind, params not an object) is denied before evaluation. */
function invalidCall(call: ToolCall): string | undefined {
  if (!call || typeof call !== "object") return "the call is not an object";
  if (typeof call.kind !== "string" || call.kind.length === 0) return "kind must be a non-empty string";
  const p: unknown = call.params;
  if (p === null || typeof p !== "object" || Array.isArray(p)) return "params must be an object";
  return undefined;
}
