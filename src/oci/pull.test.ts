import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { layerFileName } from "./pull.js";

const D = `sha256:${"b".repeat(64)}`;

describe("layerFileName", () => {
  it("keeps a plain title", () => {
    expect(layerFileName("autonomy.lock.json", D)).toBe("autonomy.lock.json");
  });
  it.each(["../etc/passwd", "/abs", "a/b", ".hidden", "..", "a\\b", "", "x..y"])("falls back to the digest for hostile title %j", (t) => {
    expect(layerFileName(t, D)).toBe("b".repeat(64));
  });
  it("never yields a path separator or a dot-dot (property)", () => {
    fc.assert(fc.property(fc.string(), (t) => {
      const n = layerFileName(t, D);
      return !n.includes("/") && !n.includes("\\") && !n.includes("..") && !n.startsWith(".") && n.length > 0;
    }), { numRuns: 5000 });
  });
});
