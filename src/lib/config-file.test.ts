import { describe, expect, it } from "vitest";
import { z } from "zod";
import { configKeyPath, parseConfigText } from "./config-file.js";

const fail = (message: string): Error => new Error(message);
const opts = { what: "test config", fail };

describe("configKeyPath", () => {
  it.each([
    [["agent_id"], "agent_id"],
    [["telemetry", "segment_bytes"], "[telemetry] segment_bytes"],
    [["a", "b", "c"], "[a.b] c"],
    [["upstreams", 1, "url"], "[upstreams[1]] url"],
    [["allowed_domains", 0], "allowed_domains[0]"],
    [["node", "rack id"], '[node] "rack id"'],
    [[], "(top level)"],
  ] as [PropertyKey[], string][])("%j → %s", (path, expected) => {
    expect(configKeyPath(path)).toBe(expected);
  });
});

describe("parseConfigText", () => {
  const schema = z.strictObject({ limits: z.strictObject({ max: z.number().int().min(1).max(10), mode: z.enum(["a", "b"]) }), name: z.string() });

  it("names every bad key with a message in the file's terms", () => {
    expect(() => parseConfigText("x.toml", `name = 1\n[limits]\nmax = 11\nmode = "c"\nextra = true`, schema, opts)).toThrow(
      'x.toml: [limits] max: expected a number ≤ 10; [limits] mode: expected one of "a", "b"; [limits] extra: unknown key; name: expected a string, got an integer',
    );
    expect(() => parseConfigText("x.toml", `name = "n"\n[limits]\nmax = 0\nmode = "a"`, schema, opts)).toThrow("x.toml: [limits] max: expected a number ≥ 1");
    expect(() => parseConfigText("x.toml", `name = "n"\nlimits = 3`, schema, opts)).toThrow("x.toml: limits: expected a table, got an integer");
  });

  it("reads JSON by the file name, and says which syntax is broken", () => {
    expect(parseConfigText("x.json", `{"name":"n","limits":{"max":2,"mode":"b"}}`, schema, opts)).toEqual({ name: "n", limits: { max: 2, mode: "b" } });
    expect(() => parseConfigText("x.json", "{", schema, opts)).toThrow(/^x\.json is not valid JSON: /);
    expect(() => parseConfigText("x.toml", "name = ", schema, opts)).toThrow(/^x\.toml is not valid TOML: /);
  });

  it("names the position of a JSON or TOML syntax error, never the text around it (it may hold secrets)", () => {
    const message = (path: string, text: string): string => {
      try {
        parseConfigText(path, text, schema, opts);
      } catch (e) {
        return (e as Error).message;
      }
      throw new Error("expected a syntax error");
    };
    const json = message("x.json", '{\n  "name": "n",\n  "password":hunter2SEC"\n}');
    expect(json).toBe("x.json is not valid JSON: unexpected character at line 3, column 14 (offset 30)");
    expect(message("x.json", '{"name": "hunter2SEC')).toBe("x.json is not valid JSON: unexpected end of input at line 1, column 21 (offset 20)");
    const toml = message("x.toml", 'name = "n"\npassword = hunter2SEC');
    expect(toml).not.toContain("hunter2SEC");
    expect(toml).toMatch(/^x\.toml is not valid TOML: .* \(line 2, column \d+\)$/);
  });
});
