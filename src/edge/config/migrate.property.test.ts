import fc from "fast-check";
import { stringify } from "smol-toml";
import { expect, it } from "vitest";
import { EdgeError } from "../errors.js";
import { parseEdgeConfig } from "./load.js";
import { planMigration } from "./migrate.js";

const optional = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
/** Version-0 documents: the keys migration rewrites, in and out of place, with values good and bad. */
const v0 = fc.record({
  relay: optional(fc.record({
    success_condition: optional(fc.constantFrom("ack", "one_peer", "all_peers", "majority")),
    bytes_per_second: optional(fc.integer({ min: -1, max: 1e6 })),
    daily_quota_bytes: optional(fc.integer({ min: 0, max: 1e9 })),
    worker_count: optional(fc.integer({ min: 0, max: 70 })),
  }, { requiredKeys: [] })),
  bandwidth: optional(fc.record({ bytes_per_second: optional(fc.integer({ min: 0, max: 1e6 })), quota_reset_utc: optional(fc.constantFrom("00:00", "12:30")) }, { requiredKeys: [] })),
  ca_key_file: fc.boolean(),
});

it("migrating random version-0 documents gives a version-1 file edged loads identically, or a typed error; the result is then current", () => {
  fc.assert(fc.property(v0, (d) => {
    const doc = JSON.parse(JSON.stringify({
      node: { id: "edge-a", state_root: "/s" },
      transport: { cert_file: "c", key_file: "k", ca_file: "a", ...(d.ca_key_file ? { ca_key_file: "ca.key" } : {}) },
      ...(d.relay === undefined ? {} : { relay: d.relay }),
      ...(d.bandwidth === undefined ? {} : { bandwidth: d.bandwidth }),
    })) as Record<string, unknown>;
    let plan;
    try {
      plan = planMigration("/cfg/edge.toml", stringify(doc));
    } catch (e) {
      if (!(e instanceof EdgeError)) throw e;
      expect(e.code).toBe("EDGE_CONFIG_INVALID");
      return;
    }
    expect(parseEdgeConfig("/cfg/edge.toml", plan.text)).toEqual(plan.config);
    expect(planMigration("/cfg/edge.toml", plan.text).current).toBe(true);
    if (d.relay?.success_condition === "ack") expect(plan.config.relay.successCondition).toBe("all_peers");
    if (d.relay?.bytes_per_second !== undefined) expect(plan.config.bandwidth.bytes_per_second).toBe(d.relay.bytes_per_second);
    expect(plan.text).not.toContain("ca_key_file");
  }), { numRuns: 300 });
});
