import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SeqBitset } from "./bitset.js";

describe("SeqBitset", () => {
  it("matches a Set model: prefix = longest confirmed run, count = confirmed beyond it (fast-check)", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 1000 }), fc.array(fc.integer({ min: 1, max: 3000 }), { maxLength: 400 }), (start, seqs) => {
      const b = new SeqBitset(start);
      const model = new Set<number>();
      for (const s of seqs) {
        const fresh = s > start && !model.has(s);
        expect(b.set(s)).toBe(fresh);
        if (s > start) model.add(s);
        let p = start;
        while (model.has(p + 1)) p++;
        expect(b.advance()).toBe(p);
        expect(b.count).toBe([...model].filter((x) => x > p).length);
      }
      for (let s = 1; s <= 3100; s++) expect(b.has(s)).toBe(s <= start || model.has(s));
    }), { numRuns: 60 });
  });

  it("stays small when the prefix keeps up", () => {
    const b = new SeqBitset(0);
    for (let s = 1; s <= 1_000_000; s++) {
      b.set(s);
      if (s % 1000 === 0) b.advance();
    }
    expect(b.advance()).toBe(1_000_000);
    expect(b.byteLength).toBeLessThanOrEqual(1024);
  });
});
