import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_RUNTIME_CONFIG, readRuntimeConfig, resolveRuntimeConfig } from "./config.js";
import { RuntimeError } from "./errors.js";

let dir = "";
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "rt-config-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function read(name: string, text: string): Promise<Awaited<ReturnType<typeof readRuntimeConfig>>> {
  const path = join(dir, name);
  await writeFile(path, text);
  return readRuntimeConfig(path);
}

async function problem(name: string, text: string): Promise<string> {
  try {
    await read(name, text);
  } catch (e) {
    expect(e).toBeInstanceOf(RuntimeError);
    expect((e as RuntimeError).code).toBe("RUNTIME_CONFIG_INVALID");
    return (e as Error).message;
  }
  throw new Error("the config was accepted");
}

describe("readRuntimeConfig", () => {
  it("reads every field from TOML", async () => {
    const c = await read("runtime.toml", `
agent_id = "picker-arm-7"
allowed_domains = ["api.example.com"]
decision_log = "async"
allow_private_networks = true
[node]
node_id = "edge-0042"
[telemetry]
otlp_url = "https://otel.example.com:4318"
otlp_compression = "gzip"
control_plane_url = "http://cp.local:8080"
node_id = "edge-0042-telemetry"
segment_bytes = 1048576
`);
    expect(c).toMatchObject({
      agentId: "picker-arm-7", allowedDomains: ["api.example.com"], allowPrivateNetworks: true, decisionLog: "async", node: { node_id: "edge-0042" },
      telemetry: { otlpUrl: "https://otel.example.com:4318", otlpCompression: "gzip", controlPlaneUrl: "http://cp.local:8080", nodeId: "edge-0042-telemetry", segmentBytes: 1048576 },
    });
  });

  it("defaults: durable decision log, no exporter", async () => {
    const c = await read("runtime.json", "{}");
    expect(c.decisionLog).toBe("durable");
    expect(c.allowPrivateNetworks).toBe(false);
    expect(c.telemetry).toEqual({});
  });

  it.each([
    ["an unknown field", `colour = "red"`, /colour/],
    ["an unknown decision_log", `decision_log = "sometimes"`, /decision_log/],
    ["a non-http collector URL", `[telemetry]\notlp_url = "ftp://otel.example.com"`, /otlp_url/],
    ["a segment size below 4 KiB", `[telemetry]\nsegment_bytes = 100`, /segment_bytes/],
    ["an unknown telemetry field", `[telemetry]\npassword = "x"`, /password/],
  ])("names the field for %s", async (_what, text, field) => {
    expect(await problem("runtime.toml", text)).toMatch(field);
  });

  it("accepts segment_bytes = 0: the WAL's seed-exact mode (never seals)", async () => {
    const c = await read("runtime.toml", `[telemetry]\nsegment_bytes = 0`);
    expect(c.telemetry).toEqual({ segmentBytes: 0 });
  });

  it("says which file is unreadable or not TOML", async () => {
    expect(await problem("bad.toml", "agent_id = ")).toMatch(/bad\.toml is not valid TOML/);
    await expect(readRuntimeConfig(join(dir, "missing.toml"))).rejects.toThrow(/cannot read runtime config .*missing\.toml: ENOENT/);
  });
});

describe("config errors name the key as TOML spells it", () => {
  it.each([
    ["an empty telemetry node_id", `[telemetry]\nnode_id = ""`, "[telemetry] node_id: must not be empty"],
    ["a string where a number belongs", `[telemetry]\nsegment_bytes = "big"`, "[telemetry] segment_bytes: expected a number, got a string"],
    ["a float where an integer belongs", `[telemetry]\nsegment_bytes = 4096.5`, "[telemetry] segment_bytes: expected an integer, got a float"],
    ["an unknown decision_log", `decision_log = "sometimes"`, `decision_log: expected one of "durable", "async"`],
    ["an unknown top-level key", `colour = "red"`, "colour: unknown key"],
    ["an unknown telemetry key", `[telemetry]\npassword = "x"`, "[telemetry] password: unknown key"],
    ["a node fact that is not a string", `[node]\n"rack id" = 7`, `[node] "rack id": expected a string, got an integer`],
    ["an empty allowed domain", `allowed_domains = ["a.example", ""]`, "allowed_domains[1]: must not be empty"],
    ["an upstream with neither command nor url", `[[upstreams]]\nname = "x"`, "upstreams[0]: give exactly one of command or url"],
    ["an upstream with a bad name", `[[upstreams]]\nname = "a.b"\ncommand = ["x"]`, "[upstreams[0]] name: letters, digits, _ and - only"],
  ])("%s", async (_what, text, expected) => {
    const message = await problem("runtime.toml", text);
    expect(message.startsWith(join(dir, "runtime.toml") + ": ")).toBe(true);
    expect(message).toContain(expected);
  });

  it("reports every bad key at once", async () => {
    const message = await problem("runtime.toml", `colour = 1\n[telemetry]\nsegment_bytes = 1.5`);
    expect(message).toContain("colour: unknown key");
    expect(message).toContain("[telemetry] segment_bytes: expected an integer, got a float");
  });
});

describe("resolveRuntimeConfig: the domain merges defaults, file and overrides", () => {
  it("without a file: the defaults, as fresh copies", async () => {
    const a = await resolveRuntimeConfig(undefined);
    expect(a).toEqual({ ...DEFAULT_RUNTIME_CONFIG, allowedDomains: [...DEFAULT_RUNTIME_CONFIG.allowedDomains] });
    a.allowedDomains.push("mutated.example");
    expect(DEFAULT_RUNTIME_CONFIG.allowedDomains).not.toContain("mutated.example");
  });

  it("overrides replace the file's values; otlpUrl keeps the other telemetry keys", async () => {
    const path = join(dir, "runtime.toml");
    await writeFile(path, `agent_id = "from-file"\ndecision_log = "async"\nallowed_domains = ["file.example"]\n[telemetry]\notlp_url = "http://file.example:4318"\nsegment_bytes = 8192\n`);
    const c = await resolveRuntimeConfig(path, { agentId: "from-flag", otlpUrl: "http://flag.example:4318", allowedDomains: ["flag.example"] });
    expect(c).toMatchObject({ agentId: "from-flag", decisionLog: "async", allowedDomains: ["flag.example"], telemetry: { otlpUrl: "http://flag.example:4318", segmentBytes: 8192 } });
    expect(await resolveRuntimeConfig(path)).toMatchObject({ agentId: "from-file", telemetry: { otlpUrl: "http://file.example:4318" } });
  });
});

describe("[tls]", () => {
  it("resolves the certificate and key relative to the config file; --tls-cert/--tls-key replace them", async () => {
    const c = await read("runtime.toml", '[tls]\ncert = "tls/node.crt"\nkey = "/etc/autonomy/node.key"\n');
    expect(c.tls).toEqual({ cert: join(dir, "tls/node.crt"), key: "/etc/autonomy/node.key" });
    const path = join(dir, "runtime.toml");
    expect((await resolveRuntimeConfig(path, { tls: { cert: "/a.crt", key: "/a.key" } })).tls).toEqual({ cert: "/a.crt", key: "/a.key" });
    expect((await resolveRuntimeConfig(undefined)).tls).toBeUndefined();
  });

  it("names a missing key", async () => {
    expect(await problem("runtime.toml", '[tls]\ncert = "x.crt"\n')).toContain("[tls] key");
  });
});
