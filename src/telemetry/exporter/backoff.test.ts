import { describe, expect, it } from "vitest";
import { backoffDelay } from "./backoff.js";

describe("backoffDelay", () => {
  const p = { baseMs: 100, maxMs: 5_000, jitter: 0.5 };
  it("doubles from base, capped at max; jitter only shortens", () => {
    expect([1, 2, 3, 4, 10, 1000].map((a) => backoffDelay(a, p, () => 0))).toEqual([100, 200, 400, 800, 5000, 5000]);
    expect(backoffDelay(3, p, () => 1)).toBe(200);
  });
  it("honours Retry-After up to the cap", () => {
    expect(backoffDelay(1, p, () => 0, 2_000)).toBe(2_000);
    expect(backoffDelay(1, p, () => 0, 60_000)).toBe(5_000);
  });
});
