/**
 * VAL23 (RL-BAND-01) for real at a reduced size: real `edged run` children (the
 * built bin/edged.js — `npm run build` first) over mTLS on loopback, driven
 * through their control sockets; and an impossible threshold shown to fail
 * its check (the check measures, it is not a constant).
 */
import { describe, expect, it } from "vitest";
import { failures, runSuite } from "../helpers/proof-run.js";

const CHECKS = ["unlimited_flag", "unlimited_delivered", "unlimited_no_throttle", "rate_delivered", "rate_throttle_count", "rate_quota_drops", "rate_measured_Bps", "quota_drop_count", "quota_bytes_sent", "quota_reconciles", "quota_no_throttle", "hot_reload_edgectl", "hot_reload_sighup", "hot_reload_sighup_throttles"];

describe("val23 (RL-BAND-01) bandwidth", () => {
  it("unlimited, rate only, quota only, hot reload through edgectl and edge.toml + SIGHUP, same pid", async () => {
    const { report, written } = await runSuite("val23", { db: "sqlite", seed: 2323 });
    expect(failures(report)).toEqual([]);
    expect(report).toMatchObject({ suite: "val23", claim: "RL-BAND-01", pass: true, backend: "none", seed: 2323, params: { thresholds: {} } });
    expect(report.checks.map((c) => c.name)).toEqual(CHECKS);
    expect(report.notes?.["netem_probe"]).toMatch(/^(available|unavailable)/);
    expect(written).toEqual(report);
  }, 180_000);

  it("an impossible rate_throttle_count fails that check, and only that one", async () => {
    const { report } = await runSuite("val23", { db: "sqlite", seed: 2324, thresholds: { rate_throttle_count: 1e9 } });
    expect(report.pass).toBe(false);
    expect(report.checks.filter((c) => !c.pass).map((c) => c.name)).toEqual(["rate_throttle_count"]);
  }, 180_000);
});
