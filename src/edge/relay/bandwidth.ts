import { setTimeout as delay } from "node:timers/promises";
import { systemClock } from "../../lib/index.js";
import type { Clock } from "../../lib/index.js";
import { EdgeError } from "../errors.js";
import type { BandwidthConfig, BandwidthLimiter, BandwidthSnapshot } from "../types.js";
import { DAY_MS, lastResetAt, resetMinute } from "./quota-window.js";

/** Waits `ms` milliseconds; rejects when `signal` aborts. Tests pass a fake that advances a fake clock. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

/** Today's quota use as persisted: the day (its start, ms since the epoch) and the bytes charged in it. */
export interface QuotaDay {
  window_start: number;
  used_bytes: number;
}

/**
 * Where the daily quota's use survives a restart (edged: the relay ledger). `load` is read once, when
 * the limiter is created; `save` must resolve only once the record is durable.
 */
export interface QuotaDayStore {
  load(): QuotaDay | undefined;
  save(day: QuotaDay): Promise<void>;
}

export interface BandwidthLimiterOptions {
  clock?: Clock;
  sleep?: Sleep;
  /** Without one the day's use is in memory only (a restart grants a fresh quota). */
  quotaStore?: QuotaDayStore;
}

const realSleep: Sleep = async (ms, signal) => {
  await delay(ms, undefined, { signal });
};

interface Waiter {
  bytes: number;
  /** Its bytes were taken from the bucket (it is, or was, the head of the queue). */
  charged: boolean;
  /** Counted in throttle_count. */
  waited: boolean;
  resolve: () => void;
  reject: (e: Error) => void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

/**
 * One node's uplink limiter (docs/segment-store.md "Bandwidth").
 *
 * Rate: a token bucket of `bytes_per_second`, holding at most one second's
 * worth (the burst). Acquires are served first come, first served; the head of
 * the queue takes all its bytes at once, which may drive the bucket into debt,
 * and resolves once the debt is repaid (balance ≥ 0). So a segment larger than
 * the burst is still sent at exactly the average rate, and the bytes released
 * in any window of t seconds never exceed rate × t + burst. Tokens are kept in
 * byte-milliseconds (integers), so the arithmetic is exact to the byte.
 *
 * Quota: `daily_quota_bytes` per day, the day running from one
 * `quota_reset_utc` to the next, computed from the clock on every call (no
 * timer decides a reset). A clock that jumps backwards never grants a fresh
 * quota (the day ends only when the clock passes the reset it was waiting
 * for), and a new reset time only moves the day's end, keeping today's use.
 *
 * `update` applies at once, also to a waiting acquire: the bucket is settled
 * at the old rate up to now and refilled at the new one from now.
 */
export function createBandwidthLimiter(cfg: BandwidthConfig, opts: BandwidthLimiterOptions = {}): BandwidthLimiter {
  return new TokenBucketLimiter(cfg, opts.clock ?? systemClock, opts.sleep ?? realSleep, opts.quotaStore);
}

/** Throws EDGE_CONFIG_INVALID naming the key when `cfg` is not a valid bandwidth configuration. */
export function checkBandwidthConfig(cfg: BandwidthConfig): BandwidthConfig {
  const bad = (key: string, why: string): never => {
    throw new EdgeError("EDGE_CONFIG_INVALID", `bandwidth.${key}: ${why}`);
  };
  if (!Number.isSafeInteger(cfg.bytes_per_second) || cfg.bytes_per_second < 0) bad("bytes_per_second", `must be a non-negative integer (0 = unlimited), got ${String(cfg.bytes_per_second)}`);
  // Byte-milliseconds must stay exact integers.
  if (cfg.bytes_per_second > 2 ** 40) bad("bytes_per_second", `must be at most ${2 ** 40}`);
  if (!Number.isSafeInteger(cfg.daily_quota_bytes) || cfg.daily_quota_bytes < 0) bad("daily_quota_bytes", `must be a non-negative integer (0 = unlimited), got ${String(cfg.daily_quota_bytes)}`);
  if (typeof cfg.quota_reset_utc !== "string" || resetMinute(cfg.quota_reset_utc) === undefined) bad("quota_reset_utc", `must be HH:MM (UTC), got ${JSON.stringify(cfg.quota_reset_utc)}`);
  return { bytes_per_second: cfg.bytes_per_second, daily_quota_bytes: cfg.daily_quota_bytes, quota_reset_utc: cfg.quota_reset_utc };
}

function checkBytes(bytes: number, what: string): void {
  if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > 2 ** 42) throw new RangeError(`bandwidth ${what}: bytes must be an integer in [0, 2^42], got ${bytes}`);
}

class TokenBucketLimiter implements BandwidthLimiter {
  #cfg: BandwidthConfig;
  #minute: number;
  /** Bucket balance in byte-milliseconds (bytes × 1000); negative = debt. */
  #balance: number;
  #refilledAt: number;
  readonly #queue: Waiter[] = [];
  #sleeping: AbortController | undefined;
  #throttles = 0;
  #quotaDrops = 0;
  #used = 0;
  #windowStart: number;
  /** The last save (chained, so records reach the store in order); `#saved` is what it wrote. */
  #saving: Promise<void> = Promise.resolve();
  #saved: QuotaDay | undefined;
  /** The day the clock jumped from when it last skipped more than a day forward (see #rollWindow). */
  #jumpedFrom: number | undefined;

  constructor(
    cfg: BandwidthConfig,
    private readonly clock: Clock,
    private readonly sleep: Sleep,
    private readonly store: QuotaDayStore | undefined,
  ) {
    this.#cfg = checkBandwidthConfig(cfg);
    this.#minute = resetMinute(this.#cfg.quota_reset_utc) ?? 0;
    this.#balance = this.#burstMilli();
    this.#refilledAt = clock.now();
    this.#windowStart = lastResetAt(this.#refilledAt, this.#minute);
    this.#restore(store?.load());
  }

  /**
   * Resumes the persisted day. Its use counts while that day has not ended (so a
   * restart, or a crash loop, never grants a fresh quota); a day stored ahead of
   * the clock (the clock was set back) is kept as the current day, so the rule
   * "no quota twice for one day" holds across restarts too.
   */
  #restore(day: QuotaDay | undefined): void {
    if (day === undefined || !Number.isSafeInteger(day.window_start) || !Number.isSafeInteger(day.used_bytes) || day.used_bytes < 0) return;
    if (this.#nextReset(day.window_start) <= this.clock.now()) return; // that day is over
    this.#windowStart = Math.max(this.#windowStart, day.window_start);
    this.#used = day.used_bytes;
    this.#saved = { window_start: this.#windowStart, used_bytes: this.#used };
  }

  /** The first reset (at the current reset minute) after `windowStart`: when that day ends. */
  #nextReset(windowStart: number): number {
    return lastResetAt(windowStart, this.#minute) + DAY_MS;
  }

  // ---------------------------------------------------------------- quota

  reserveQuota(bytes: number): boolean {
    checkBytes(bytes, "reserveQuota");
    this.#rollWindow();
    const quota = this.#cfg.daily_quota_bytes;
    if (quota > 0 && this.#used + bytes > quota) {
      this.#quotaDrops++;
      return false;
    }
    this.#used += bytes;
    this.#persist();
    return true;
  }

  refundQuota(bytes: number, dayEndsAt: string): void {
    checkBytes(bytes, "refundQuota");
    this.#rollWindow();
    // A reservation made in an earlier day was already forgotten by the reset.
    if (bytes === 0 || new Date(this.#nextReset(this.#windowStart)).toISOString() !== dayEndsAt) return;
    this.#used = Math.max(0, this.#used - bytes);
    this.#persist();
  }

  flushQuota(): Promise<void> {
    return this.#saving;
  }

  /** Queues a save of today's use behind the previous one (a failed save is retried by the next). */
  #persist(): void {
    const store = this.store;
    if (store === undefined) return;
    this.#saving = this.#saving.catch(() => undefined).then(async () => {
      const day = { window_start: this.#windowStart, used_bytes: this.#used };
      // Reservations made while the previous save ran are written together by this one.
      if (this.#saved?.window_start === day.window_start && this.#saved.used_bytes === day.used_bytes) return;
      await store.save(day);
      this.#saved = day;
    });
    // Whoever awaits flushQuota sees a failed save; nobody else must crash on it.
    this.#saving.catch(() => undefined);
  }

  /**
   * Starts a new day once the clock passes the current day's end. The day
   * never moves backwards: after a backward jump the use is kept until the
   * clock passes the same reset it was waiting for (no quota twice for one day).
   * One exception bounds a forward clock step: when the clock skipped more than
   * a day ahead and then comes back to (or after) the day it jumped from, the
   * day moves back to the clock's day. The use spent in the jumped-to day is
   * charged to the day the clock jumped from (when the bytes were really
   * sent): kept when the clock comes back to that day, reset when it comes
   * back on a later one. Without it a clock stepped a year ahead for a minute left
   * the quota spent in that minute blocking the node for a year.
   */
  #rollWindow(): void {
    const start = lastResetAt(this.clock.now(), this.#minute);
    if (start > this.#windowStart) {
      this.#jumpedFrom = start - this.#windowStart > DAY_MS ? this.#windowStart : undefined;
      this.#used = 0;
      this.#windowStart = start;
      this.#persist();
    } else if (start < this.#windowStart && this.#jumpedFrom !== undefined && start >= this.#jumpedFrom) {
      if (start > this.#jumpedFrom) this.#used = 0;
      this.#windowStart = start;
      this.#jumpedFrom = undefined;
      this.#persist();
    }
  }

  // ---------------------------------------------------------------- rate

  acquire(bytes: number, signal?: AbortSignal): Promise<void> {
    checkBytes(bytes, "acquire");
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { bytes, charged: false, waited: false, resolve, reject, signal, onAbort: () => this.#abort(w) };
      signal?.addEventListener("abort", w.onAbort, { once: true });
      this.#queue.push(w);
      this.#pump();
    });
  }

  update(cfg: BandwidthConfig): void {
    const next = checkBandwidthConfig(cfg);
    this.#refill();
    const wasUnlimited = this.#cfg.bytes_per_second === 0;
    this.#rollWindow(); // a reset due under the old schedule still happens
    this.#cfg = next;
    const minute = resetMinute(next.quota_reset_utc) ?? 0;
    if (minute !== this.#minute) {
      // A new reset time moves the day's end; it does not reset today's use.
      this.#minute = minute;
      this.#windowStart = lastResetAt(this.clock.now(), minute);
      this.#persist();
    }
    // From unlimited, start with a full bucket; otherwise keep the balance (debt included), capped at the new burst.
    this.#balance = wasUnlimited ? this.#burstMilli() : Math.min(this.#balance, this.#burstMilli());
    this.#pump();
  }

  snapshot(): BandwidthSnapshot {
    this.#refill();
    this.#rollWindow();
    return {
      ...this.#cfg,
      unlimited: this.#cfg.bytes_per_second === 0 && this.#cfg.daily_quota_bytes === 0,
      available_tokens: this.#cfg.bytes_per_second === 0 ? 0 : Math.floor(this.#balance / 1000),
      daily_used_bytes: this.#used,
      quota_resets_at: new Date(this.#nextReset(this.#windowStart)).toISOString(),
      throttle_count: this.#throttles,
      quota_drop_count: this.#quotaDrops,
    };
  }

  #burstMilli(): number {
    return this.#cfg.bytes_per_second * 1000;
  }

  #refill(): void {
    const now = this.clock.now();
    // A clock that jumps backwards adds nothing (and takes nothing away).
    const dt = Math.max(0, now - this.#refilledAt);
    this.#refilledAt = now;
    const rate = this.#cfg.bytes_per_second;
    if (rate > 0) this.#balance = Math.min(this.#burstMilli(), this.#balance + rate * dt);
  }

  /** Releases every waiter the bucket allows, in order; arms one sleep for the head's remaining debt. */
  #pump(): void {
    this.#refill();
    const rate = this.#cfg.bytes_per_second;
    for (;;) {
      const head = this.#queue[0];
      if (!head) break;
      if (rate > 0 && !head.charged) {
        head.charged = true;
        this.#balance -= head.bytes * 1000;
      }
      if (rate > 0 && this.#balance < 0) {
        for (const w of this.#queue) {
          if (!w.waited) {
            w.waited = true;
            this.#throttles++;
          }
        }
        this.#arm(Math.ceil(-this.#balance / rate));
        return;
      }
      this.#queue.shift();
      this.#settle(head);
      head.resolve();
    }
    this.#disarm();
  }

  #arm(ms: number): void {
    this.#disarm();
    const ctl = new AbortController();
    this.#sleeping = ctl;
    this.sleep(ms, ctl.signal).then(
      () => {
        if (this.#sleeping !== ctl) return;
        this.#sleeping = undefined;
        this.#pump();
      },
      () => undefined, // superseded by a newer sleep (update, abort, a new pump)
    );
  }

  #disarm(): void {
    this.#sleeping?.abort();
    this.#sleeping = undefined;
  }

  #settle(w: Waiter): void {
    w.signal?.removeEventListener("abort", w.onAbort);
  }

  #abort(w: Waiter): void {
    const i = this.#queue.indexOf(w);
    if (i < 0) return;
    this.#queue.splice(i, 1);
    this.#settle(w);
    this.#refill();
    // Its bytes were never sent: give back what it took.
    if (w.charged && this.#cfg.bytes_per_second > 0) this.#balance = Math.min(this.#burstMilli(), this.#balance + w.bytes * 1000);
    w.reject(abortReason(w.signal));
    this.#pump();
  }
}

/** The signal's reason when it is an Error (as `AbortController.abort(err)` passes it), else an AbortError. */
function abortReason(signal: AbortSignal | undefined): Error {
  const r: unknown = signal?.reason;
  if (r instanceof Error) return r;
  return Object.assign(new Error("bandwidth acquire aborted"), { name: "AbortError", cause: r });
}
