import { isAbsolute } from "node:path";
import fc from "fast-check";
import { stringify } from "smol-toml";
import { describe, expect, it } from "vitest";
import { EdgeError } from "../errors.js";
import { parseEdgeConfig } from "./load.js";
import type { EdgeConfig } from "./schema.js";

const FULL = `config_version = 1
[node]
id = "edge-a"
state_root = "state"
[transport]
cert_file = "a.crt"
key_file = "a.key"
ca_file = "ca.crt"
listen = "127.0.0.1:7443"
[relay]
success_condition = "all_peers"
dial_timeout_seconds = 2
[relay.retry]
max_retry = 3
backoff_initial_ms = 100
backoff_max_ms = 1000
[bandwidth]
bytes_per_second = 1000
quota_reset_utc = "01:00"
[[peers]]
id = "edge-b"
address = "10.0.0.2:7443"
`;

/** The vocabulary of edge.toml, so random documents hit real keys (and near misses) rather than only unknown ones. */
const KEYS = ["config_version", "node", "id", "state_root", "transport", "cert_file", "key_file", "ca_file", "listen", "relay", "retry",
  "max_retry", "backoff_initial_ms", "backoff_max_ms", "jitter", "success_condition", "peers", "address", "bandwidth", "bytes_per_second",
  "daily_quota_bytes", "quota_reset_utc", "storage", "ceiling_bytes", "scheduler", "bootstrap", "os_release_file", "__proto__", "constructor", "x y"];

const scalar = fc.oneof(
  fc.integer({ min: -5, max: 70_000 }), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(),
  fc.constantFrom("edge-a", "edge-b", "127.0.0.1:7443", "one_peer", "all_peers", "ack", "00:00", "", "a/b", "24:00", "[::1]:1"),
  fc.string({ maxLength: 12 }), fc.constant(1),
);
const { value } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: "small", withCrossShrink: true }, scalar, tie("table"), fc.array(tie("table"), { maxLength: 3 }), fc.array(scalar, { maxLength: 3 })),
  table: fc.dictionary(fc.constantFrom(...KEYS), tie("value"), { maxKeys: 6 }),
}));
const doc = fc.record({ config_version: fc.constantFrom(1, 1, 1, 0, 2) }, { requiredKeys: [] }).chain((head) =>
  fc.dictionary(fc.constantFrom(...KEYS), value, { maxKeys: 8 }).map((rest) => ({ ...rest, ...head })),
);

/** The contract: a resolved config, or a typed config error that names the file (and, when invalid, at least one key). */
function outcome(path: string, text: string): EdgeConfig | EdgeError {
  try {
    return parseEdgeConfig(path, text);
  } catch (e) {
    if (!(e instanceof EdgeError)) throw e;
    expect(["EDGE_CONFIG_INVALID", "EDGE_CONFIG_VERSION"]).toContain(e.code);
    expect(e.message.startsWith(path)).toBe(true);
    if (e.code === "EDGE_CONFIG_INVALID" && !e.message.includes("is not valid TOML")) {
      const fields = e.details.fields as { field: string; problem: string }[];
      expect(fields.length).toBeGreaterThan(0);
      for (const f of fields) expect(e.message).toContain(`${f.field}: ${f.problem}`);
    }
    return e;
  }
}

function wellFormed(c: EdgeConfig): void {
  for (const p of [c.node.stateRoot, c.transport.certFile, c.transport.keyFile, c.transport.caFile, c.bootstrap.osReleaseFile]) expect(isAbsolute(p)).toBe(true);
  expect(c.relay.retry.backoffInitialMs).toBeLessThanOrEqual(c.relay.retry.backoffMaxMs);
  expect(new Set(c.peers.map((p) => p.id)).size).toBe(c.peers.length);
  expect(c.peers.some((p) => p.id === c.node.id)).toBe(false);
}

describe("parseEdgeConfig (property)", () => {
  it("random TOML documents never crash: a valid config or a typed error naming the key paths", () => {
    fc.assert(fc.property(doc, (d) => {
      let text: string;
      try {
        text = stringify(d);
      } catch {
        return; // not expressible in TOML (e.g. mixed arrays smol-toml refuses): nothing to test
      }
      const r = outcome("/cfg/edge.toml", text);
      if (!(r instanceof EdgeError)) wellFormed(r);
    }), { numRuns: 400 });
  });

  it("random byte mutations of a valid file never crash", () => {
    const edit = fc.record({ at: fc.nat({ max: FULL.length }), del: fc.nat({ max: 6 }), ins: fc.string({ maxLength: 6, unit: "binary" }) });
    fc.assert(fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
      let text = FULL;
      for (const e of edits) text = text.slice(0, e.at) + e.ins + text.slice(e.at + e.del);
      const r = outcome("/cfg/edge.toml", text);
      if (!(r instanceof EdgeError)) wellFormed(r);
    }), { numRuns: 600 });
  });

  it("valid documents with random values in range always load, and round-trip their numbers", () => {
    const peerIds = fc.uniqueArray(fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/), { maxLength: 4 }).filter((ids) => !ids.includes("self"));
    const arb = fc.record({
      max_retry: fc.integer({ min: 1, max: 1000 }), initial: fc.integer({ min: 1, max: 10_000 }), extra: fc.integer({ min: 0, max: 10_000 }),
      rate: fc.nat(), quota: fc.nat(), hh: fc.integer({ min: 0, max: 23 }), mm: fc.integer({ min: 0, max: 59 }), peers: peerIds,
    });
    fc.assert(fc.property(arb, (a) => {
      const text = stringify({
        config_version: 1,
        node: { id: "self", state_root: "/s" },
        transport: { cert_file: "c", key_file: "k", ca_file: "a" },
        relay: { retry: { max_retry: a.max_retry, backoff_initial_ms: a.initial, backoff_max_ms: a.initial + a.extra } },
        bandwidth: { bytes_per_second: a.rate, daily_quota_bytes: a.quota, quota_reset_utc: `${String(a.hh).padStart(2, "0")}:${String(a.mm).padStart(2, "0")}` },
        peers: a.peers.map((id, i) => ({ id, address: `10.0.0.${i + 1}:7443` })),
      });
      const c = parseEdgeConfig("/cfg/edge.toml", text);
      wellFormed(c);
      expect(c.relay.retry).toMatchObject({ maxRetry: a.max_retry, backoffInitialMs: a.initial, backoffMaxMs: a.initial + a.extra });
      expect(c.bandwidth.bytes_per_second).toBe(a.rate);
      expect(c.peers.map((p) => p.id)).toEqual(a.peers);
    }), { numRuns: 200 });
  });
});
