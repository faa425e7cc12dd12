import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseFaithfulJson } from "./faithful-json.js";

/** What JSON.parse makes of a text, or "error". */
function plain(text: string): unknown {
  try {
    return { value: JSON.parse(text) as unknown };
  } catch {
    return "error";
  }
}

describe("parseFaithfulJson", () => {
  it("parses JSON to exactly what JSON.parse gives (arbitrary JSON texts without duplicate keys)", () => {
    fc.assert(
      fc.property(fc.json({ depthSize: "medium" }), (text) => {
        const r = parseFaithfulJson(text);
        expect(r).toEqual({ ok: true, value: JSON.parse(text) as unknown });
      }),
      { numRuns: 500 },
    );
  });

  it("accepts a text exactly when JSON.parse does (arbitrary strings, also near-JSON mutations)", () => {
    const mutated = fc.tuple(fc.json(), fc.nat(), fc.constantFrom("", "x", "{", "]", ",", '"', "\\", "\u0001", "-", "1e", ".5")).map(([t, i, ins]) => {
      const at = t.length === 0 ? 0 : i % t.length;
      return t.slice(0, at) + ins + t.slice(at + (i % 2));
    });
    fc.assert(
      fc.property(fc.oneof(fc.string(), mutated), (text) => {
        const r = parseFaithfulJson(text);
        const p = plain(text);
        if (r.ok) expect(p).toEqual({ value: r.value });
        else if (r.kind === "syntax") expect(p).toBe("error");
        else expect(r.kind).toBe("duplicate-key");
      }),
      { numRuns: 2000 },
    );
  });

  it("refuses a key that appears twice, naming its path, also when spelled with escapes", () => {
    expect(parseFaithfulJson('{"kind":"x","params":{"force":false,"force":null}}')).toMatchObject({ ok: false, kind: "duplicate-key", path: "params.force" });
    expect(parseFaithfulJson('{"a":[{"b":1},{"b":1,"\\u0062":2}]}')).toMatchObject({ ok: false, kind: "duplicate-key", path: "a[1].b" });
    expect(parseFaithfulJson('{"odd key":1,"odd key":1}')).toMatchObject({ ok: false, path: '["odd key"]' });
    // The same key in sibling objects is fine.
    expect(parseFaithfulJson('[{"a":1},{"a":1}]')).toEqual({ ok: true, value: [{ a: 1 }, { a: 1 }] });
  });

  it("refuses nesting beyond maxDepth without exhausting the stack", () => {
    expect(parseFaithfulJson("[[[1]]]", { maxDepth: 3 })).toEqual({ ok: true, value: [[[1]]] });
    expect(parseFaithfulJson("[[[[1]]]]", { maxDepth: 3 })).toMatchObject({ ok: false, kind: "too-deep", path: "[0][0][0]" });
    const bomb = "[".repeat(500_000) + "]".repeat(500_000);
    expect(parseFaithfulJson(bomb)).toMatchObject({ ok: false, kind: "too-deep" });
  });

  it("keeps __proto__ as an own property, never the prototype", () => {
    const r = parseFaithfulJson('{"__proto__":{"polluted":true}}');
    expect(r.ok).toBe(true);
    const v = (r as { value: Record<string, unknown> }).value;
    expect(Object.keys(v)).toEqual(["__proto__"]);
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
