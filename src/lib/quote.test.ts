import { describe, expect, it } from "vitest";
import { quote, terminalSafe } from "./quote.js";

describe("text from others, printed", () => {
  it("terminalSafe escapes C0, DEL, C1, bidi controls and line separators, and leaves other text (✓, ü, 日本) alone", () => {
    expect(terminalSafe("\u001b[2K\r✓ ok")).toBe("\\u{1b}[2K\\u{d}✓ ok");
    expect(terminalSafe("a\u009bb\u007fc\u202ed\u2066e\u2028f\u200fg\u061c")).toBe("a\\u{9b}b\\u{7f}c\\u{202e}d\\u{2066}e\\u{2028}f\\u{200f}g\\u{61c}");
    expect(terminalSafe("über 日本 ✓")).toBe("über 日本 ✓");
  });

  it("quote escapes every non-printable-ASCII character", () => {
    expect(quote("\u001b[32mx\u202e")).toBe('"\\u001b[32mx\\u202e"');
  });
});
