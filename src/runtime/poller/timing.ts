import { backoffDelay } from "../../telemetry/index.js";
import type { Rng } from "../../lib/index.js";

/**
 * The release poller's timing rules, exported so the fleet simulator's virtual
 * nodes poll exactly like a real node (same spread, same backoff) instead of
 * keeping a copy that could drift.
 */

/** First retry after a failed poll within 2 s (base 1 s doubled once, full jitter), never below 1 s. */
export const POLL_FAILURE_BASE_MS = 1000;

/** The gap after a successful poll: uniform in [interval/2, interval], so a fleet started together does not poll together. */
export function steadyPollDelay(intervalMs: number, random: Rng): number {
  return backoffDelay(1, { baseMs: intervalMs, maxMs: intervalMs, jitter: 0.5 }, random);
}

/**
 * The gap after the `failures`-th consecutive failed poll: capped exponential
 * backoff with full jitter; a server's Retry-After is honoured as the floor
 * (up to the cap).
 */
export function failedPollDelay(failures: number, capMs: number, random: Rng, retryAfterMs?: number): number {
  return Math.max(POLL_FAILURE_BASE_MS, backoffDelay(failures, { baseMs: POLL_FAILURE_BASE_MS * 2, maxMs: capMs, jitter: 1 }, random, retryAfterMs));
}

/** The cap of the failure backoff for a poll interval: at least the interval (default cap 5 min). */
export function pollBackoffCap(intervalMs: number, maxBackoffMs = 300_000): number {
  return Math.max(intervalMs, maxBackoffMs);
}
