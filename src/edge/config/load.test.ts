import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EdgeError } from "../errors.js";
import { EDGE_DEFAULTS } from "./schema.js";
import { MAX_EDGE_CONFIG_BYTES, loadEdgeConfig, parseEdgeConfig } from "./load.js";

const MINIMAL = `config_version = 1
[node]
id = "edge-a"
state_root = "state"
[transport]
cert_file = "certs/edge-a.crt"
key_file = "certs/edge-a.key"
ca_file = "/etc/autonomy/ca.crt"
`;

function failure(fn: () => unknown): EdgeError {
  try {
    fn();
  } catch (e) {
    if (e instanceof EdgeError) return e;
    throw e;
  }
  throw new Error("expected an EdgeError");
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "edge-config-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("parseEdgeConfig", () => {
  it("applies every default and resolves relative paths against the file's directory", () => {
    const c = parseEdgeConfig("/etc/autonomy/edge.toml", MINIMAL);
    expect(c).toEqual({
      source: "/etc/autonomy/edge.toml",
      node: { id: "edge-a", stateRoot: "/etc/autonomy/state" },
      transport: { certFile: "/etc/autonomy/certs/edge-a.crt", keyFile: "/etc/autonomy/certs/edge-a.key", caFile: "/etc/autonomy/ca.crt" },
      relay: { ...EDGE_DEFAULTS.relay, retry: { ...EDGE_DEFAULTS.relay.retry } },
      scheduler: EDGE_DEFAULTS.scheduler,
      storage: EDGE_DEFAULTS.storage,
      bandwidth: EDGE_DEFAULTS.bandwidth,
      peers: [],
      bootstrap: EDGE_DEFAULTS.bootstrap,
    });
  });

  it("reads every key, converting seconds and hours to milliseconds", () => {
    const c = parseEdgeConfig("/cfg/edge.toml", `${MINIMAL}listen = "127.0.0.1:7443"
[relay]
enabled = false
success_condition = "all_peers"
worker_count = 2
dial_timeout_seconds = 1.5
ack_timeout_seconds = 10
max_segment_bytes = 4096
evict_on_relay = true
relay_activated_release = false
activate_relayed_releases = false
[relay.retry]
max_retry = 3
backoff_initial_ms = 100
backoff_max_ms = 1000
jitter = 0
[scheduler]
schedule_interval_seconds = 0.25
max_concurrent_relays = 2
max_segments_per_scheduling_round = 7
[storage]
ceiling_bytes = 1000000
deadletter_retention_hours = 0.5
[bandwidth]
bytes_per_second = 1000
daily_quota_bytes = 5000
quota_reset_utc = "03:30"
[bootstrap]
runtime_install_dir = "rt"
os_release_file = "fake/os-release"
kernel_release_file = "/tmp/kr"
machine_arch = "riscv64"
[[peers]]
id = "edge-b"
address = "10.0.0.2:7443"
[[peers]]
id = "edge-c"
address = "[::1]:7443"
`);
    expect(c.transport.listen).toBe("127.0.0.1:7443");
    expect(c.relay).toEqual({
      enabled: false, successCondition: "all_peers", workerCount: 2, dialTimeoutMs: 1500, ackTimeoutMs: 10_000, maxSegmentBytes: 4096,
      evictOnRelay: true, relayActivatedRelease: false, activateRelayedReleases: false,
      retry: { maxRetry: 3, backoffInitialMs: 100, backoffMaxMs: 1000, jitter: 0 },
    });
    expect(c.scheduler).toEqual({ intervalMs: 250, maxConcurrentRelays: 2, maxSegmentsPerRound: 7 });
    expect(c.storage).toEqual({ ceilingBytes: 1_000_000, deadletterRetentionMs: 1_800_000 });
    expect(c.bandwidth).toEqual({ bytes_per_second: 1000, daily_quota_bytes: 5000, quota_reset_utc: "03:30" });
    expect(c.bootstrap).toEqual({ runtimeInstallDir: "/cfg/rt", osReleaseFile: "/cfg/fake/os-release", kernelReleaseFile: "/tmp/kr", machineArch: "riscv64" });
    expect(c.peers).toEqual([{ id: "edge-b", address: "10.0.0.2:7443" }, { id: "edge-c", address: "[::1]:7443" }]);
  });

  it("names the file and every bad key, as TOML spells it", () => {
    const e = failure(() => parseEdgeConfig("edge.toml", `${MINIMAL}[relay]\nsuccess_condition = "ack"\n[relay.retry]\nmax_retry = 0\n[bandwidth]\nquota_reset_utc = "25:00"\ncolour = 1\n`));
    expect(e.code).toBe("EDGE_CONFIG_INVALID");
    expect(e.message).toBe('edge.toml: [relay] success_condition: expected one of "one_peer", "all_peers"; [relay.retry] max_retry: expected a number ≥ 1; [bandwidth] quota_reset_utc: must be HH:MM (UTC); [bandwidth] colour: unknown key');
    expect(e.details.fields).toHaveLength(4);
  });

  it("refuses duplicate peer ids and a peer that is this node, naming the peer's key path", () => {
    const peers = (ids: string[]) => ids.map((id, i) => `[[peers]]\nid = "${id}"\naddress = "10.0.0.${i + 1}:7443"\n`).join("");
    const e = failure(() => parseEdgeConfig("edge.toml", MINIMAL + peers(["edge-b", "edge-c", "edge-b", "edge-a"])));
    expect(e.code).toBe("EDGE_CONFIG_INVALID");
    expect(e.message).toBe("edge.toml: [peers[2]] id: duplicate peer id (also peers[0]); [peers[3]] id: a peer cannot be this node ([node] id)");
  });

  it("refuses backoff_initial_ms above backoff_max_ms, also against the default maximum", () => {
    const both = failure(() => parseEdgeConfig("e.toml", `${MINIMAL}[relay.retry]\nbackoff_initial_ms = 2000\nbackoff_max_ms = 1000\n`));
    expect(both.message).toBe("e.toml: [relay.retry] backoff_initial_ms: backoff_initial_ms (2000) must not exceed backoff_max_ms (1000)");
    const vsDefault = failure(() => parseEdgeConfig("e.toml", `${MINIMAL}[relay.retry]\nbackoff_initial_ms = 60000\n`));
    expect(vsDefault.message).toContain("[relay.retry] backoff_initial_ms: backoff_initial_ms (60000) must not exceed backoff_max_ms (30000)");
    const maxBelowDefault = failure(() => parseEdgeConfig("e.toml", `${MINIMAL}[relay.retry]\nbackoff_max_ms = 100\n`));
    expect(maxBelowDefault.message).toContain("[relay.retry] backoff_max_ms:");
    expect(parseEdgeConfig("e.toml", `${MINIMAL}[relay.retry]\nbackoff_initial_ms = 1000\nbackoff_max_ms = 1000\n`).relay.retry.backoffMaxMs).toBe(1000);
  });

  it("a file without config_version is EDGE_CONFIG_VERSION with the migrate hint; so is another version", () => {
    const v0 = failure(() => parseEdgeConfig("edge.toml", MINIMAL.replace("config_version = 1\n", "")));
    expect(v0.code).toBe("EDGE_CONFIG_VERSION");
    expect(v0.message).toContain("has no config_version: it is a version-0 edge config");
    expect(v0.hint).toContain("autonomy config migrate --config edge.toml --write");
    expect(failure(() => parseEdgeConfig("edge.toml", MINIMAL.replace("config_version = 1", "config_version = 0"))).code).toBe("EDGE_CONFIG_VERSION");
    const newer = failure(() => parseEdgeConfig("edge.toml", MINIMAL.replace("config_version = 1", "config_version = 7")));
    expect(newer.code).toBe("EDGE_CONFIG_VERSION");
    expect(newer.hint).toContain("newer edged");
    expect(failure(() => parseEdgeConfig("edge.toml", MINIMAL.replace("config_version = 1", 'config_version = "1"'))).message).toBe("edge.toml: config_version: expected one of 1");
  });

  it("reads edge.json by its suffix", () => {
    const c = parseEdgeConfig("/x/edge.json", JSON.stringify({ config_version: 1, node: { id: "n", state_root: "/s" }, transport: { cert_file: "c", key_file: "k", ca_file: "a" } }));
    expect(c.transport.caFile).toBe("/x/a");
  });
});

describe("hostile edge configs", () => {
  it("a huge file is refused before it is parsed", async () => {
    const big = join(dir, "big.toml");
    await writeFile(big, MINIMAL + `# ${"x".repeat(MAX_EDGE_CONFIG_BYTES)}\n`);
    const e = await loadEdgeConfig(big).then(() => undefined, (err: unknown) => err);
    expect(e).toBeInstanceOf(EdgeError);
    expect((e as EdgeError).message).toBe(`${big} is over ${MAX_EDGE_CONFIG_BYTES} bytes: not an edge config`);
    expect(failure(() => parseEdgeConfig("e.toml", "a".repeat(MAX_EDGE_CONFIG_BYTES + 1))).code).toBe("EDGE_CONFIG_INVALID");
  });

  it("deep nesting, NUL bytes and broken syntax are EDGE_CONFIG_INVALID, not a crash", () => {
    const deep = failure(() => parseEdgeConfig("e.toml", `${MINIMAL}x = ${"[".repeat(100_000)}${"]".repeat(100_000)}\n`));
    expect(deep.code).toBe("EDGE_CONFIG_INVALID");
    expect(deep.message).toMatch(/^e\.toml is not valid TOML: /);
    const deepTables = failure(() => parseEdgeConfig("e.toml", `${MINIMAL}[${Array.from({ length: 5000 }, () => "a").join(".")}]\n`));
    expect(deepTables.code).toBe("EDGE_CONFIG_INVALID");
    const nul = failure(() => parseEdgeConfig("e.toml", MINIMAL.replace('"edge-a"', '"edge\u0000a"')));
    expect(nul.code).toBe("EDGE_CONFIG_INVALID");
    expect(failure(() => parseEdgeConfig("e.toml", `\u0000${MINIMAL}`)).code).toBe("EDGE_CONFIG_INVALID");
    expect(failure(() => parseEdgeConfig("e.toml", "[node\n")).code).toBe("EDGE_CONFIG_INVALID");
  });

  it("a secret-looking value is never echoed in the error", () => {
    const secret = "hunter2-SECRET-9f8e7d";
    const texts = [
      `${MINIMAL}token = "${secret}"\n`,
      MINIMAL.replace('"certs/edge-a.key"', `"${secret}" junk`),
      MINIMAL.replace('"edge-a"', `"${secret}!!"`),
      `${MINIMAL}[[peers]]\nid = "p"\naddress = "${secret}"\n`,
      `${MINIMAL}[relay]\nsuccess_condition = "${secret}"\n`,
      `${MINIMAL}[bandwidth]\nbytes_per_second = "${secret}"\n`,
      `${MINIMAL}password = "${secret}`,
    ];
    for (const t of texts) {
      const e = failure(() => parseEdgeConfig("e.toml", t));
      expect(e.code).toBe("EDGE_CONFIG_INVALID");
      expect(JSON.stringify({ m: e.message, d: e.details, h: e.hint })).not.toContain("hunter2");
    }
  });

  it("a missing config file says the file is missing, not 'fix the named keys'", async () => {
    const e = await loadEdgeConfig(join(dir, "missing.toml")).then(() => undefined, (err: unknown) => err);
    expect((e as EdgeError).hint).toMatch(/does not exist/);
    expect((e as EdgeError).hint).not.toMatch(/named keys/);
  });

  it("a peer address without a port reports one problem ('must be host:port'), not also 'port must be at most 65535'", () => {
    const e = failure(() => parseEdgeConfig("edge.toml", `${MINIMAL}[[peers]]\nid = "edge-b"\naddress = "127.0.0.1"\n`));
    expect(e.message).toContain("must be host:port");
    expect(e.message).not.toContain("65535");
    const big = failure(() => parseEdgeConfig("edge.toml", `${MINIMAL}[[peers]]\nid = "edge-b"\naddress = "127.0.0.1:70000"\n`));
    expect(big.message).toContain("port must be at most 65535");
  });

  it("an empty edge.toml is called empty, not a version-0 edge config", () => {
    for (const text of ["", "# only a comment\n\n"]) {
      const e = failure(() => parseEdgeConfig("edge.toml", text));
      expect(e.code).toBe("EDGE_CONFIG_INVALID");
      expect(e.message).toContain("edge.toml is empty");
      expect(e.message).not.toContain("version-0");
    }
  });

  it("a missing or unreadable file names the file", async () => {
    const e = await loadEdgeConfig(join(dir, "none.toml")).then(() => undefined, (err: unknown) => err);
    expect((e as EdgeError).code).toBe("EDGE_CONFIG_INVALID");
    expect((e as EdgeError).message).toBe(`cannot read edge config ${join(dir, "none.toml")}: ENOENT`);
    const ok = join(dir, "edge.toml");
    await writeFile(ok, MINIMAL);
    expect((await loadEdgeConfig(ok)).node.stateRoot).toBe(join(dir, "state"));
  });
});
