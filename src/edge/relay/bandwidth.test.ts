import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EdgeError } from "../errors.js";
import type { BandwidthConfig, BandwidthLimiter } from "../types.js";
import { createBandwidthLimiter } from "./bandwidth.js";
import type { Sleep } from "./bandwidth.js";

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A fake clock and sleep: time moves only when the test advances it, waking sleepers at their exact deadlines. */
class FakeTime {
  sleepers: { until: number; resolve: () => void }[] = [];
  constructor(public t: number) {}
  clock = { now: (): number => this.t };
  sleep: Sleep = (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      const s = { until: this.t + ms, resolve };
      this.sleepers.push(s);
      signal.addEventListener("abort", () => {
        this.sleepers = this.sleepers.filter((x) => x !== s);
        reject(signal.reason instanceof Error ? signal.reason : new Error("sleep aborted"));
      }, { once: true });
    });
  /** Moves time forward by `ms`, stopping at every sleeper's deadline on the way. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await flush();
      const due = this.sleepers.filter((s) => s.until <= end).sort((a, b) => a.until - b.until)[0];
      if (!due) break;
      this.sleepers = this.sleepers.filter((s) => s !== due);
      this.t = Math.max(this.t, due.until);
      due.resolve();
    }
    this.t = end;
    await flush();
  }
  /** Jumps the clock (NTP step, RTC reset) without waking anyone. */
  jump(ms: number): void {
    this.t += ms;
  }
}

const T0 = Date.parse("2026-03-01T10:00:00.000Z");
const cfg = (over: Partial<BandwidthConfig> = {}): BandwidthConfig => ({ bytes_per_second: 0, daily_quota_bytes: 0, quota_reset_utc: "00:00", ...over });

function setup(c: BandwidthConfig, t = T0): { time: FakeTime; bw: BandwidthLimiter } {
  const time = new FakeTime(t);
  return { time, bw: createBandwidthLimiter(c, { clock: time.clock, sleep: time.sleep }) };
}

/** Tracks when each acquire resolved (fake ms) or that it rejected. */
function track(time: FakeTime, p: Promise<void>): { at: number | undefined; error: unknown } {
  const r: { at: number | undefined; error: unknown } = { at: undefined, error: undefined };
  p.then(() => void (r.at = time.t), (e: unknown) => void (r.error = e));
  return r;
}

describe("bandwidth limiter (src/edge/relay/bandwidth)", () => {
  it("unlimited (0): every acquire resolves at once, nothing is throttled", async () => {
    const { time, bw } = setup(cfg());
    const r = track(time, bw.acquire(10 ** 9));
    await flush();
    expect(r.at).toBe(T0);
    expect(bw.snapshot()).toMatchObject({ unlimited: true, throttle_count: 0, quota_drop_count: 0 });
  });

  it("limits to bytes_per_second exactly: one second's burst, then each byte at the rate", async () => {
    const { time, bw } = setup(cfg({ bytes_per_second: 1000 }));
    expect(bw.snapshot().available_tokens).toBe(1000);
    const first = track(time, bw.acquire(1000));
    await flush();
    expect(first.at).toBe(T0);
    const rs = [1, 2, 3, 4].map(() => track(time, bw.acquire(500)));
    await time.advance(499);
    expect(rs[0]?.at).toBeUndefined();
    await time.advance(1);
    expect(rs.map((r) => r.at)).toEqual([T0 + 500, undefined, undefined, undefined]);
    await time.advance(1500);
    expect(rs.map((r) => r.at)).toEqual([T0 + 500, T0 + 1000, T0 + 1500, T0 + 2000]);
    expect(bw.snapshot()).toMatchObject({ throttle_count: 4, available_tokens: 0, unlimited: false });
    await time.advance(5000);
    expect(bw.snapshot().available_tokens).toBe(1000); // refilled to the burst, no further
  });

  it("debt: a segment larger than one second's worth still goes at exactly the average rate", async () => {
    const { time, bw } = setup(cfg({ bytes_per_second: 1000 }));
    const big = track(time, bw.acquire(10_000));
    await time.advance(8999);
    expect(big.at).toBeUndefined();
    expect(bw.snapshot().available_tokens).toBe(-1); // 1 byte of debt left
    await time.advance(1);
    expect(big.at).toBe(T0 + 9000); // 10 000 bytes = burst + 9 s at 1000 B/s
    const next = track(time, bw.acquire(3000));
    await time.advance(3000);
    expect(next.at).toBe(T0 + 12_000);
    expect(bw.snapshot().throttle_count).toBe(2);
  });

  it("serves acquires first come, first served", async () => {
    const { time, bw } = setup(cfg({ bytes_per_second: 100 }));
    const order: number[] = [];
    const ps = [300, 10, 50].map((n, i) => bw.acquire(n).then(() => void order.push(i)));
    await time.advance(10_000);
    await Promise.all(ps);
    expect(order).toEqual([0, 1, 2]);
  });

  it("hot update during a wait: a lowered rate slows it, a raised rate speeds it, unlimited releases it", async () => {
    const { time, bw } = setup(cfg({ bytes_per_second: 100 }));
    const r = track(time, bw.acquire(1100)); // 1000 bytes of debt at 100 B/s: due at +10 s
    await time.advance(2000); // 800 left
    bw.update(cfg({ bytes_per_second: 400 }));
    await time.advance(1999);
    expect(r.at).toBeUndefined();
    await time.advance(1);
    expect(r.at).toBe(T0 + 4000);

    const slow = track(time, bw.acquire(1000)); // bucket empty: 1000 of debt at 400 B/s = 2.5 s
    await time.advance(500); // 800 left
    bw.update(cfg({ bytes_per_second: 50 }));
    await time.advance(15_999);
    expect(slow.at).toBeUndefined();
    await time.advance(1);
    expect(slow.at).toBe(T0 + 4000 + 500 + 16_000);

    const released = track(time, bw.acquire(10_000));
    await time.advance(10);
    bw.update(cfg({ bytes_per_second: 0 }));
    await flush();
    expect(released.at).toBe(T0 + 20_510);
    expect(bw.snapshot()).toMatchObject({ bytes_per_second: 0, unlimited: true });
  });

  it("honours AbortSignal: a waiting acquire rejects, gives its bytes back, and the next one moves up", async () => {
    const { time, bw } = setup(cfg({ bytes_per_second: 100 }));
    await bw.acquire(100); // empty the bucket
    const ctl = new AbortController();
    const a = track(time, bw.acquire(500, ctl.signal));
    const b = track(time, bw.acquire(100));
    await time.advance(1000);
    ctl.abort(new Error("peer removed"));
    await flush();
    expect((a.error as Error).message).toBe("peer removed");
    expect(b.at).toBe(T0 + 1000); // 100 tokens accrued in 1 s, the aborted 500 refunded
    const pre = new AbortController();
    pre.abort();
    await expect(bw.acquire(1, pre.signal)).rejects.toBeDefined();
  });

  it("daily quota: reserves until the quota, counts each refusal, and resets at the configured minute", () => {
    const { time, bw } = setup(cfg({ daily_quota_bytes: 1000, quota_reset_utc: "10:30" }), Date.parse("2026-03-01T10:29:00.000Z"));
    expect(bw.snapshot().unlimited).toBe(false);
    expect(bw.reserveQuota(600)).toBe(true);
    expect(bw.reserveQuota(500)).toBe(false);
    expect(bw.reserveQuota(400)).toBe(true);
    expect(bw.reserveQuota(1)).toBe(false);
    expect(bw.snapshot()).toMatchObject({ daily_used_bytes: 1000, quota_drop_count: 2, quota_resets_at: "2026-03-01T10:30:00.000Z" });
    time.jump(59_999);
    expect(bw.reserveQuota(1)).toBe(false);
    time.jump(1); // 10:30:00.000
    expect(bw.reserveQuota(1000)).toBe(true);
    expect(bw.snapshot()).toMatchObject({ daily_used_bytes: 1000, quota_drop_count: 3, quota_resets_at: "2026-03-02T10:30:00.000Z" });
  });

  it("daily quota: resets across midnight, after a forward jump of days, and never on a backward jump", () => {
    const { time, bw } = setup(cfg({ daily_quota_bytes: 100, quota_reset_utc: "00:00" }), Date.parse("2026-12-31T23:59:59.000Z"));
    expect(bw.reserveQuota(100)).toBe(true);
    time.jump(1000); // 2027-01-01T00:00:00Z
    expect(bw.snapshot()).toMatchObject({ daily_used_bytes: 0, quota_resets_at: "2027-01-02T00:00:00.000Z" });
    expect(bw.reserveQuota(100)).toBe(true);
    time.jump(-2 * 3600_000); // back to 2026-12-31T22:00Z: no fresh quota for going back
    expect(bw.reserveQuota(1)).toBe(false);
    expect(bw.snapshot().quota_resets_at).toBe("2027-01-02T00:00:00.000Z");
    time.jump(2 * 3600_000); // 2027-01-01T00:00Z again: the same day, not a second quota for it
    expect(bw.reserveQuota(1)).toBe(false);
    time.jump(86_400_000 - 1);
    expect(bw.reserveQuota(1)).toBe(false);
    time.jump(1); // 2027-01-02T00:00Z
    expect(bw.reserveQuota(100)).toBe(true);
    time.jump(3 * 86_400_000); // days later
    expect(bw.reserveQuota(100)).toBe(true);
    expect(bw.snapshot().daily_used_bytes).toBe(100);
  });

  it("daily quota: a forward clock step, then corrected, charges its use to the day it jumped from and ends with that day", () => {
    const { time, bw } = setup(cfg({ daily_quota_bytes: 100, quota_reset_utc: "00:00" }), Date.parse("2026-12-06T12:00:00.000Z"));
    expect(bw.reserveQuota(40)).toBe(true);
    time.jump(365 * 86_400_000); // a wrong NTP server
    expect(bw.reserveQuota(100)).toBe(true); // that (future) day's quota, spent for real today
    time.jump(-365 * 86_400_000 + 60_000); // corrected, the same real day
    expect(bw.reserveQuota(1)).toBe(false); // no second quota for the real day
    expect(bw.snapshot().quota_resets_at).toBe("2026-12-07T00:00:00.000Z"); // not 2027-12-07
    time.jump(12 * 3600_000); // the next real day
    expect(bw.reserveQuota(100)).toBe(true);
  });

  it("daily quota: hot update raises or lowers it at once; a new reset time moves the next reset without resetting today", () => {
    const { time, bw } = setup(cfg({ daily_quota_bytes: 100, quota_reset_utc: "00:00" }));
    expect(bw.reserveQuota(100)).toBe(true);
    expect(bw.reserveQuota(1)).toBe(false);
    bw.update(cfg({ daily_quota_bytes: 150, quota_reset_utc: "09:00" })); // now 10:00: 09:00 already passed today
    expect(bw.snapshot()).toMatchObject({ daily_used_bytes: 100, quota_resets_at: "2026-03-02T09:00:00.000Z" });
    expect(bw.reserveQuota(50)).toBe(true);
    bw.update(cfg({ daily_quota_bytes: 0, quota_reset_utc: "09:00" }));
    expect(bw.reserveQuota(10 ** 9)).toBe(true);
    time.jump(23 * 3600_000);
    expect(bw.snapshot().daily_used_bytes).toBe(0);
  });

  it("with the real clock and timers: waits about as long as the rate says, and an abort ends the wait", async () => {
    const bw = createBandwidthLimiter(cfg({ bytes_per_second: 20_000 }));
    await bw.acquire(20_000); // the burst
    const t0 = performance.now();
    await bw.acquire(2_000); // 100 ms at 20 000 B/s
    const waited = performance.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(95);
    expect(waited).toBeLessThan(2_000);
    const ctl = new AbortController();
    const p = bw.acquire(1_000_000, ctl.signal);
    setTimeout(() => ctl.abort(new Error("shutdown")), 20);
    await expect(p).rejects.toThrow("shutdown");
    expect(bw.snapshot().throttle_count).toBe(2);
  });

  it("refuses an invalid configuration, naming the key (EDGE_CONFIG_INVALID)", () => {
    for (const [bad, key] of [
      [cfg({ bytes_per_second: -1 }), "bandwidth.bytes_per_second"],
      [cfg({ bytes_per_second: 1.5 }), "bandwidth.bytes_per_second"],
      [cfg({ daily_quota_bytes: Number.NaN }), "bandwidth.daily_quota_bytes"],
      [cfg({ quota_reset_utc: "24:00" }), "bandwidth.quota_reset_utc"],
    ] as const) {
      const e = (() => {
        try {
          createBandwidthLimiter(bad);
        } catch (err) {
          return err;
        }
        return undefined;
      })();
      expect(e).toBeInstanceOf(EdgeError);
      expect((e as EdgeError).code).toBe("EDGE_CONFIG_INVALID");
      expect((e as EdgeError).message).toContain(key);
    }
    const { bw } = setup(cfg({ bytes_per_second: 10 }));
    expect(() => bw.update(cfg({ quota_reset_utc: "7:00" }))).toThrow(/quota_reset_utc/);
    expect(bw.snapshot().bytes_per_second).toBe(10); // unchanged
  });

  /*
   * The window bound. Each acquire is released as a whole at one instant, so a
   * segment larger than the burst is, at its own instant, more than "rate × 0 +
   * burst": the bound that holds (and that we check) is
   *   bytes released in [a, b] ≤ rate × (b − a) + max(burst, largest segment in it) + rate × 1 ms
   * (the last term: waits are whole milliseconds, rounded up, so a release can
   * land up to 1 ms after its exact instant). With segments no larger than the
   * burst it is the classic rate × window + burst (+ 1 ms). From the start the
   * bound is exact to the byte: released by t ≤ burst + rate × (t − start).
   */
  it("property: bytes released in any window stay within rate × window + burst; from the start exactly; a saturated stream runs at exactly the rate", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5000 }),
        fc.array(fc.record({ gap: fc.integer({ min: 0, max: 3000 }), factor: fc.double({ min: 0.001, max: 3, noNaN: true }) }), { minLength: 1, maxLength: 25 }),
        async (rate, reqs) => {
          const { time, bw } = setup(cfg({ bytes_per_second: rate }));
          const released: { at: number; bytes: number }[] = [];
          const all: Promise<void>[] = [];
          let total = 0;
          for (const r of reqs) {
            await time.advance(r.gap);
            const bytes = Math.max(1, Math.floor(rate * r.factor));
            total += bytes;
            all.push(bw.acquire(bytes).then(() => void released.push({ at: time.t, bytes })));
          }
          await time.advance(Math.ceil((total * 1000) / rate) + 1000);
          await Promise.all(all);
          expect(released).toHaveLength(reqs.length);
          for (const a of released) {
            const sinceStart = released.filter((x) => x.at <= a.at).reduce((s, x) => s + x.bytes, 0);
            expect(sinceStart * 1000).toBeLessThanOrEqual(rate * 1000 + rate * (a.at - T0));
            for (const b of released) {
              if (b.at < a.at) continue;
              const inWindow = released.filter((x) => x.at >= a.at && x.at <= b.at);
              const sum = inWindow.reduce((s, x) => s + x.bytes, 0);
              const largest = Math.max(...inWindow.map((x) => x.bytes));
              expect(sum * 1000).toBeLessThanOrEqual(rate * (b.at - a.at + 1) + 1000 * Math.max(rate, largest));
            }
          }
          // All requests at once: the last is released exactly when the bucket has paid for everything.
          if (reqs.slice(1).every((r) => r.gap === 0)) {
            const last = Math.max(...released.map((x) => x.at));
            expect(last - (T0 + (reqs[0]?.gap ?? 0))).toBe(Math.max(0, Math.ceil(((total - rate) * 1000) / rate)));
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
