import { LIFECYCLE_EVENT_TYPE } from "../cpapi/index.js";
import type { IngestEvent, LifecyclePhase } from "../cpapi/index.js";
import type { Rng } from "../lib/index.js";

/**
 * The events a virtual device sends, in the shapes a real node's WAL holds
 * and its exporter ships (docs/control-plane.md, "Events a node sends"):
 * `event_id` is `<node_id>:<wal generation>:<seq>`, `attributes` is the WAL
 * event as a real node writes it (lifecycle: src/runtime/poller/lifecycle.ts;
 * decisions: the interceptor's DecisionEvent), and `release_id` /
 * `lock_fingerprint` name the activation the node ran when it happened, so
 * the control plane can compare a release's cohort with the rest.
 */
export const DECISION_EVENT_TYPE = "ai.policy.decision";
export const TOOL_RESULT_EVENT_TYPE = "ai.tool.result";

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

  event(type: string, at: string, attributes: Record<string, unknown>, running: { release_id?: string | undefined; lock_fingerprint?: string | null | undefined }): IngestEvent {
    this.#seq += 1;
    return {
      event_id: `${this.nodeId}:${this.walGeneration}:${this.#seq}`,
      event_type: type,
      node_id: this.nodeId,
      timestamp: at,
      ...(running.release_id !== undefined ? { release_id: running.release_id } : {}),
      ...(running.lock_fingerprint !== undefined && running.lock_fingerprint !== null ? { lock_fingerprint: running.lock_fingerprint } : {}),
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
 * 1 − denyRate) and, when allowed, its `ai.tool.result` (an error with
 * probability toolErrorRate).
 */
export function toolCall(nodeId: string, at: string, policyRef: string, random: Rng, rates: { deny: number; toolError: number }): Record<string, unknown>[] {
  const tool = TOOLS[Math.floor(random() * TOOLS.length)] ?? "tool.echo";
  const deny = random() < rates.deny;
  const decision = {
    type: DECISION_EVENT_TYPE, timestamp: at, tool, decision: deny ? "deny" : "allow", policy_ref: policyRef,
    policies: [deny ? "forbid-sim" : "permit-sim"], reason: deny ? "forbidden by forbid-sim" : "permitted by permit-sim",
    errors: [], latency_us: 40 + Math.floor(random() * 200), transport: "http", agent_id: `${nodeId}-agent`,
  };
  if (deny) return [decision];
  const failed = random() < rates.toolError;
  const result = {
    type: TOOL_RESULT_EVENT_TYPE, timestamp: at, tool, ok: !failed, agent_id: `${nodeId}-agent`,
    ...(failed ? { error: { code: "TOOL_FAILED", message: "simulated tool failure" } } : {}),
  };
  return [decision, result];
}
