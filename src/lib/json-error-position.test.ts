import { describe, expect, it } from "vitest";
import { jsonErrorPosition } from "./json-error-position.js";

describe("jsonErrorPosition", () => {
  it("finds nothing wrong where JSON.parse finds nothing wrong", () => {
    for (const t of ['{"a":[1,-2.5e3,true,false,null,"x\\u00e9\\n"],"b":{}}', " [ ] ", "0", '"s"']) {
      expect(() => JSON.parse(t) as unknown, t).not.toThrow();
      expect(jsonErrorPosition(t), t).toBeUndefined();
    }
  });

  it("points at the first byte JSON.parse rejects, for each kind of fault", () => {
    const cases: [string, number][] = [
      ['{"a":x}', 5], ['{"a":1,}', 7], ['{"a" 1}', 5], ["[1 2]", 3], ['"a\\q"', 3], ['"\\u12g4"', 2], ['"a\u0001"', 2],
      ["01", 1], ["-", 0], ["{", 1], ['"abc', 4], ["[1]x", 3], ["", 0], ["tru", 0],
    ];
    for (const [t, at] of cases) {
      expect(() => JSON.parse(t) as unknown, t).toThrow(SyntaxError);
      expect(jsonErrorPosition(t)?.offset, JSON.stringify(t)).toBe(at);
    }
  });

  it("gives 1-based line and column", () => {
    expect(jsonErrorPosition('{\n  "a": ?\n}')).toEqual({ offset: 9, line: 2, column: 8, problem: "unexpected character" });
  });
});
