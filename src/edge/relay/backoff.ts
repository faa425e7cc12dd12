import type { Rng } from "../../lib/index.js";

export interface BackoffConfig {
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** 0..1: the delay is spread uniformly over ±jitter of itself, so peers retried together do not stay in lockstep. */
  jitter: number;
}

/**
 * The wait before attempt `attempt + 1`, after `attempt` failed ones (≥ 1):
 * initial × 2^(attempt−1), capped at max, then jittered by ±jitter with the
 * (seeded, injectable) rng, and never above max nor below 1 ms.
 */
export function backoffDelay(attempt: number, cfg: BackoffConfig, rng: Rng): number {
  const exp = Math.min(cfg.backoffMaxMs, cfg.backoffInitialMs * 2 ** Math.min(Math.max(attempt - 1, 0), 52));
  const spread = exp * cfg.jitter * (2 * rng() - 1);
  return Math.max(1, Math.min(cfg.backoffMaxMs, Math.round(exp + spread)));
}
