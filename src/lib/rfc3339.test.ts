import { describe, expect, it } from "vitest";
import { parseRfc3339 } from "./rfc3339.js";

describe("#parseRfc3339", () => {
  it("parses UTC, offsets and fractions to epoch milliseconds", () => {
    expect(parseRfc3339("2025-06-01T11:00:00Z")).toBe(Date.parse("2025-06-01T11:00:00Z"));
    expect(parseRfc3339("2025-06-01T13:00:00.5+02:00")).toBe(Date.parse("2025-06-01T11:00:00.500Z"));
    expect(parseRfc3339("2025-06-01t11:00:00.123456789z")).toBe(Date.parse("2025-06-01T11:00:00.123Z"));
    expect(parseRfc3339("1990-01-01T00:00:00Z")).toBe(Date.parse("1990-01-01T00:00:00Z"));
  });

  it("accepts a leap day and takes year 0000 literally", () => {
    expect(parseRfc3339("2024-02-29T00:00:00Z")).toBe(Date.parse("2024-02-29T00:00:00Z"));
    expect(new Date(parseRfc3339("0000-02-29T00:00:00Z")!).getUTCFullYear()).toBe(0);
  });

  it.each([
    "",
    "yesterday",
    "2025-06-01",
    "2025-06-01 12:00:00Z",
    "2026-02-30T00:00:00Z",
    "2023-02-29T00:00:00Z",
    "2025-13-01T00:00:00Z",
    "2025-04-31T00:00:00Z",
    "2025-06-01T24:00:00Z",
    "2025-06-01T12:60:00Z",
    "2025-06-01T12:00:60Z",
    "2025-06-01T12:00:00+24:00",
    "2025-06-01T12:00:00",
    "1748779200",
  ])("refuses %j (Date.parse accepts some of these, rolling them over)", (s) => {
    expect(parseRfc3339(s)).toBeUndefined();
  });
});
