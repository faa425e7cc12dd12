import { EdgeError } from "../errors.js";
import type { DeliveryState, SegmentId, SegmentInfo, SuccessCondition } from "../types.js";

/**
 * The relay ledger's records and its state machine, as pure functions over
 * plain values (src/edge/relay/ledger.ts stores them in LMDB, one transaction
 * per change). Keeping the transitions pure lets the model test drive them
 * without a database and the ledger apply them inside a transaction.
 *
 *   scheduled ──begin──▶ inflight ──ack──▶ acked                (terminal)
 *       ▲                   │ fail(retry)  ──▶ failed ──begin──▶ inflight
 *       │ abort (stop)      │ fail(deadletter) ──▶ deadletter   (terminal)
 *       └───────────────────┘                       │ retry (operator)
 *   failed/scheduled ──deadletter──▶ deadletter     ▼
 *   open after a crash: inflight ──▶ failed     scheduled (attempts 0)
 */

export interface RelayErrorInfo {
  code: string;
  message: string;
}

/** One attempt to push a segment to a peer. */
export interface AttemptRecord {
  started: string;
  completed: string | null;
  /** null while the attempt is in flight. */
  /** `reoffered`: not an attempt but a dead letter sent back to `scheduled` by edged itself (see {@link reofferDeadletter}). */
  outcome: "acked" | "failed" | "deadletter" | "interrupted" | "aborted" | "reoffered" | null;
  error: RelayErrorInfo | null;
  /** Why a `reoffered` entry was made. */
  reason?: ReofferReason;
}

/**
 * Why edged re-offered a dead-lettered release to a peer: a push to that peer succeeded again
 * (`peer_back`), edged started (`edged_start`), or the same release was enqueued again (`release_reenqueued`).
 */
export type ReofferReason = "peer_back" | "edged_start" | "release_reenqueued";

export interface DeliveryRecord {
  segment_id: SegmentId;
  peer_id: string;
  state: DeliveryState;
  /** Attempts since the delivery was (re)scheduled; an operator retry resets it, the history stays. */
  attempts: number;
  first_queued_at: string;
  updated_at: string;
  /** When the scheduler may next try (scheduled and failed only). */
  next_attempt_at: string | null;
  last_error: RelayErrorInfo | null;
  /** The newest {@link HISTORY_LIMIT} attempts, oldest first. */
  history: AttemptRecord[];
  deadlettered_at: string | null;
  /** How often an operator sent this dead letter back to `scheduled`. */
  operator_retries: number;
  /** The receiver said it already held the segment (a retried push after a lost ack). */
  duplicate_ack: boolean;
}

export interface SegmentRecord {
  info: SegmentInfo;
  peers: string[];
  success_condition: SuccessCondition;
  enqueued_at: string;
  /** When the success condition was first met; null until then. */
  delivered_at: string | null;
}

/** Attempts kept per delivery: enough to see a pattern, bounded so a flapping peer cannot grow a record forever. */
export const HISTORY_LIMIT = 20;

export const INTERRUPTED: RelayErrorInfo = { code: "RELAY_INTERRUPTED", message: "the attempt was cut short by a crash or restart of edged" };

export function newDelivery(segment: SegmentId, peer: string, now: string): DeliveryRecord {
  return {
    segment_id: segment, peer_id: peer, state: "scheduled", attempts: 0, first_queued_at: now, updated_at: now,
    next_attempt_at: now, last_error: null, history: [], deadlettered_at: null, operator_retries: 0, duplicate_ack: false,
  };
}

function conflict(d: DeliveryRecord, change: string, allowed: readonly DeliveryState[]): never {
  throw new EdgeError("DELIVERY_STATE_CONFLICT", `delivery of segment ${d.segment_id} to peer ${d.peer_id} is ${d.state}; ${change} needs ${allowed.join(" or ")}`, {
    details: { segment_id: d.segment_id, peer_id: d.peer_id, state: d.state },
  });
}

function expect(d: DeliveryRecord, change: string, allowed: readonly DeliveryState[]): void {
  if (!allowed.includes(d.state)) conflict(d, change, allowed);
}

function withHistory(history: AttemptRecord[], entry: AttemptRecord): AttemptRecord[] {
  return [...history, entry].slice(-HISTORY_LIMIT);
}

/** Closes the open (last) attempt; a record without one gets a closed entry of its own. */
function closeAttempt(d: DeliveryRecord, now: string, outcome: NonNullable<AttemptRecord["outcome"]>, error: RelayErrorInfo | null): AttemptRecord[] {
  const last = d.history[d.history.length - 1];
  if (last !== undefined && last.completed === null) return [...d.history.slice(0, -1), { ...last, completed: now, outcome, error }];
  return withHistory(d.history, { started: now, completed: now, outcome, error });
}

export function beginAttempt(d: DeliveryRecord, now: string): DeliveryRecord {
  expect(d, "starting an attempt", ["scheduled", "failed"]);
  return { ...d, state: "inflight", updated_at: now, next_attempt_at: null, history: withHistory(d.history, { started: now, completed: null, outcome: null, error: null }) };
}

export function ackAttempt(d: DeliveryRecord, now: string, duplicate: boolean): DeliveryRecord {
  expect(d, "acknowledging", ["inflight"]);
  return { ...d, state: "acked", attempts: d.attempts + 1, updated_at: now, next_attempt_at: null, duplicate_ack: duplicate, history: closeAttempt(d, now, "acked", null) };
}

/** A failed attempt: counts it; `retryAt` (ms) schedules the next one, `null` sends the delivery to DEADLETTER. */
export function failAttempt(d: DeliveryRecord, now: string, error: RelayErrorInfo, retryAt: number | null): DeliveryRecord {
  expect(d, "recording a failed attempt", ["inflight"]);
  const counted = { ...d, attempts: d.attempts + 1, updated_at: now, last_error: error };
  if (retryAt === null) return { ...counted, state: "deadletter", next_attempt_at: null, deadlettered_at: now, history: closeAttempt(d, now, "deadletter", error) };
  return { ...counted, state: "failed", next_attempt_at: new Date(retryAt).toISOString(), history: closeAttempt(d, now, "failed", error) };
}

/** A clean stop aborted the push: not the peer's fault, so not counted; due again at once. */
export function abortAttempt(d: DeliveryRecord, now: string): DeliveryRecord {
  expect(d, "aborting an attempt", ["inflight"]);
  return { ...d, state: d.attempts === 0 ? "scheduled" : "failed", updated_at: now, next_attempt_at: now, history: closeAttempt(d, now, "aborted", null) };
}

/** After a crash: the interrupted attempt counts (it may have reached the peer), and the delivery is retried as usual. */
export function recoverInflight(d: DeliveryRecord, now: string): DeliveryRecord {
  expect(d, "recovering an interrupted attempt", ["inflight"]);
  return { ...d, state: "failed", attempts: d.attempts + 1, updated_at: now, next_attempt_at: now, last_error: INTERRUPTED, history: closeAttempt(d, now, "interrupted", INTERRUPTED) };
}

/** Dead-letters a waiting delivery without an attempt (its segment is gone, or its attempts were used up before a crash). */
export function deadletterWaiting(d: DeliveryRecord, now: string, error: RelayErrorInfo): DeliveryRecord {
  expect(d, "dead-lettering", ["scheduled", "failed"]);
  return { ...d, state: "deadletter", updated_at: now, next_attempt_at: null, deadlettered_at: now, last_error: error };
}

/** Moves a waiting delivery's next attempt (a daily quota refusal: not an attempt). */
export function deferWaiting(d: DeliveryRecord, now: string, until: number): DeliveryRecord {
  expect(d, "deferring", ["scheduled", "failed"]);
  return { ...d, updated_at: now, next_attempt_at: new Date(until).toISOString() };
}

/** edged re-offers a dead letter (a release to a peer that came back): scheduled with fresh attempts, recorded in the history. */
export function reofferDeadletter(d: DeliveryRecord, now: string, reason: ReofferReason): DeliveryRecord {
  expect(d, "re-offering", ["deadletter"]);
  return {
    ...d, state: "scheduled", attempts: 0, updated_at: now, next_attempt_at: now, deadlettered_at: null,
    history: withHistory(d.history, { started: now, completed: now, outcome: "reoffered", error: null, reason }),
  };
}

/** Operator retry of a dead letter: scheduled again with fresh attempts; the history stays. */
export function retryDeadletter(d: DeliveryRecord, now: string): DeliveryRecord {
  expect(d, "retrying", ["deadletter"]);
  return { ...d, state: "scheduled", attempts: 0, updated_at: now, next_attempt_at: now, deadlettered_at: null, operator_retries: d.operator_retries + 1 };
}

/** Whether the segment's success condition holds, given each configured peer's delivery state. */
export function successMet(condition: SuccessCondition, states: readonly (DeliveryState | undefined)[]): boolean {
  if (states.length === 0) return false;
  return condition === "one_peer" ? states.some((s) => s === "acked") : states.every((s) => s === "acked");
}

/** Scheduled, failed or in flight: the delivery still needs the segment's bytes. */
export function isPending(state: DeliveryState): boolean {
  return state === "scheduled" || state === "failed" || state === "inflight";
}
