/** Capped exponential backoff with jitter. */
export interface RetryPolicy {
  /** First delay. */
  baseMs: number;
  /** Cap: no delay is longer (a receiver's Retry-After is honoured up to this too). */
  maxMs: number;
  /** 0–1: the delay is drawn uniformly from [d·(1−jitter), d]. 1 is "full jitter". */
  jitter: number;
}

export const DEFAULT_RETRY: RetryPolicy = { baseMs: 250, maxMs: 30_000, jitter: 0.5 };

/** Delay before retry number `attempt` (1 = the first retry). */
export function backoffDelay(attempt: number, p: RetryPolicy, random: () => number = Math.random, retryAfterMs?: number): number {
  const exp = Math.min(p.maxMs, p.baseMs * 2 ** Math.min(Math.max(0, attempt - 1), 40));
  const jitter = Math.min(1, Math.max(0, p.jitter));
  const d = exp * (1 - jitter * random());
  return Math.round(retryAfterMs === undefined ? d : Math.max(d, Math.min(p.maxMs, retryAfterMs)));
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
