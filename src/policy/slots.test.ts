import { describe, expect, it } from "vitest";
import { policySlotSchema, rotateSlots, slotDigests } from "./index.js";
import type { PolicySlot } from "./index.js";

const slot = (n: number): PolicySlot => ({ digest: `sha256:${String(n).repeat(64).slice(0, 64)}`, name: `p${n}`, version: `${n}.0.0`, loaded_at: "1970-01-01T00:00:00.000Z" });

describe("slot rotation (pure)", () => {
  it("puts a new bundle into current and the old current into LKG", () => {
    const { next, rotated } = rotateSlots({ current: slot(1), lkg: slot(2), other: "kept" }, slot(3));
    expect(rotated).toBe(true);
    expect(next).toEqual({ current: slot(3), lkg: slot(1), other: "kept" });
  });

  it("fills only current on the first load (no LKG yet)", () => {
    expect(rotateSlots({}, slot(1))).toEqual({ next: { current: slot(1) }, rotated: true });
  });

  it("rotates nothing when the bundle already is current, so the real LKG is never pushed out", () => {
    const state = { current: slot(1), lkg: slot(2) };
    const r = rotateSlots(state, { ...slot(1), loaded_at: "2030-01-01T00:00:00.000Z" });
    expect(r.rotated).toBe(false);
    expect(r.next).toBe(state);
  });

  it("names the digests a bundle store must keep", () => {
    expect(slotDigests({ current: slot(1), lkg: slot(2) })).toEqual([slot(1).digest, slot(2).digest]);
    expect(slotDigests({})).toEqual([]);
  });

  it("accepts only sha256 digests in a slot", () => {
    expect(policySlotSchema.safeParse(slot(1)).success).toBe(true);
    expect(policySlotSchema.safeParse({ ...slot(1), digest: "md5:00" }).success).toBe(false);
  });
});
