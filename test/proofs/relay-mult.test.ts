/**
 * relay-mult (RL-MULT-01) for real at a reduced size: real `edged run` children (the
 * built bin/edged.js — `npm run build` first) over mTLS on loopback, driven
 * through their control sockets; and an impossible threshold shown to fail
 * its check (the check measures, it is not a constant).
 */
import { describe, expect, it } from "vitest";
import { failures, runSuite } from "../helpers/proof-run.js";

const CHECKS = ["mult-p1_delivered", "mult-p2_delivered", "dead_peer_deadlettered", "live_peers_no_deadletters", "deadletters_only_dead_peer", "mult-p1_inbox", "mult-p2_inbox", "live_delivery_slowdown"];

describe("relay-mult (RL-MULT-01) multi-peer isolation", () => {
  it("three peers, one a black hole: the live two get every segment undelayed; only the dead one's deliveries dead-letter", async () => {
    const { report, written } = await runSuite("relay-mult", { db: "sqlite", seed: 4141, devices: 6 });
    expect(failures(report)).toEqual([]);
    expect(report).toMatchObject({ suite: "relay-mult", claim: "RL-MULT-01", pass: true, backend: "none", seed: 4141, params: { devices: 6, thresholds: {} } });
    expect(report.checks.map((c) => c.name)).toEqual(CHECKS);
    expect(report.notes?.["netem_probe"]).toMatch(/^(available|unavailable)/);
    expect(written).toEqual(report);
  }, 180_000);

  it("an impossible live_delivery_slowdown fails that check, and only that one", async () => {
    const { report } = await runSuite("relay-mult", { db: "sqlite", seed: 4142, devices: 3, thresholds: { live_delivery_slowdown: 0 } });
    expect(report.pass).toBe(false);
    expect(report.checks.filter((c) => !c.pass).map((c) => c.name)).toEqual(["live_delivery_slowdown"]);
  }, 180_000);
});
