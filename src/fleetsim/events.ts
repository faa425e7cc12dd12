import { DECISION_EVENT_TYPE, LIFECYCLE_EVENT_TYPE, TOOL_RESULT_EVENT_TYPE } from "../cpapi/index.js";
import type { IngestEvent, LifecyclePhase } from "../cpapi/index.js";
import type { Rng } from "../lib/index.js";

/**
 * The events a virtual device sends, in the shapes a real node's WAL exporter
 * ships (docs/control-plane.md, "Event shapes: what the node sends"):
 * `event_id` is `<node_id>:wal:<wal generation>:<seq>`, `attributes` is the
 * WAL event as a real node writes it (lifecycle: src/runtime/poller/
 * lifecycle.ts; decisions and tool results: the interceptor's), and
 * `release_id` / `lock_fingerprint` are lifted to the top level for the
 * events that name them: lifecycle events their release, decisions and tool
 * results the control plane's release the device runs (as a real node
 * following a control plane stamps them; behaviour gates count by it).
 */

/** The node's current activation, as events carry it. */
export interface Running {
  release_id: string;
  sequence: number;
  lock_fingerprint: string;
}

/** Numbers events per node: one WAL generation, a seq counter from 1. */
export class EventLog {
  readonly nodeId: string;
  readonly walGeneration: string;
  #seq = 0;

  constructor(nodeId: string, walGeneration: string) {
    this.nodeId = nodeId;
    this.walGeneration = walGeneration;
  }

  get seq(): number {
    return this.#seq;
  }

  event(type: string, at: string, attributes: Record<string, unknown>, names: { release_id?: string | undefined; lock_fingerprint?: string | null | undefined } = {}): IngestEvent {
    this.#seq += 1;
    return {
      event_id: `${this.nodeId}:wal:${this.walGeneration}:${this.#seq}`,
      event_type: type,
      node_id: this.nodeId,
      timestamp: at,
      ...(names.release_id !== undefined ? { release_id: names.release_id } : {}),
      ...(names.lock_fingerprint !== undefined && names.lock_fingerprint !== null ? { lock_fingerprint: names.lock_fingerprint } : {}),
      attributes,
    };
  }
}

/** What one lifecycle phase says (the same fields as the real poller's PhaseFacts). */
export interface PhaseFacts {
  release_id: string;
  sequence: number;
  lock_fingerprint: string | null;
  error_code?: string;
  detail?: string;
  extra?: Record<string, unknown>;
}

/** The lifecycle WAL event body, field for field as the real LifecycleReporter writes it. */
export function lifecycleBody(nodeId: string, phase: LifecyclePhase, at: string, f: PhaseFacts): Record<string, unknown> {
  return {
    type: LIFECYCLE_EVENT_TYPE, phase, timestamp: at, node_id: nodeId,
    release_id: f.release_id, sequence: f.sequence, lock_fingerprint: f.lock_fingerprint,
    ...(f.error_code !== undefined ? { error_code: f.error_code } : {}),
    ...(f.detail !== undefined ? { detail: f.detail } : {}),
    ...f.extra,
  };
}

const TOOLS = ["tool.echo", "tool.http_get"] as const;

/**
 * One simulated tool call: its `ai.policy.decision` (allow with probability
 * 1 − denyRate) and, when allowed, its `ai.tool.result` (`ok: false`,
 * `error_code: TOOL_FAILED` with probability toolErrorRate).
 */
export function toolCall(nodeId: string, at: string, policyRef: string, random: Rng, rates: { deny: number; toolError: number }, names: { release_id: string; lock_fingerprint: string } | null = null): Record<string, unknown>[] {
  const tool = TOOLS[Math.floor(random() * TOOLS.length)] ?? "tool.echo";
  const deny = random() < rates.deny;
  const decision = {
    type: DECISION_EVENT_TYPE, timestamp: at, ...names, tool, decision: deny ? "deny" : "allow", policy_ref: policyRef,
    policies: [deny ? "forbid-sim" : "permit-sim"], reason: deny ? "forbidden by forbid-sim" : "permitted by permit-sim",
    errors: [], latency_us: 40 + Math.floor(random() * 200), transport: "http", agent_id: `${nodeId}-agent`,
  };
  if (deny) return [decision];
  const failed = random() < rates.toolError;
  const result = {
    type: TOOL_RESULT_EVENT_TYPE, timestamp: at, ...names, tool, ok: !failed, ...(failed ? { error_code: "TOOL_FAILED" } : {}),
    duration_ms: 1 + Math.floor(random() * 50), transport: "http", agent_id: `${nodeId}-agent`, policy_ref: policyRef,
  };
  return [decision, result];
}
