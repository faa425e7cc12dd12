/**
 * VAL21 (RL-QMGM-01) for real at a reduced size: real `edged run` children (the
 * built bin/edged.js — `npm run build` first) over mTLS on loopback, driven
 * through their control sockets; and an impossible threshold shown to fail
 * its check (the check measures, it is not a constant).
 */
import { describe, expect, it } from "vitest";
import { failures, runSuite } from "../helpers/proof-run.js";

const CHECKS = ["drained", "no_deadletters", "queue_accounting", "evictions", "evictions_reconcile", "evictions_all_lru", "evicted_bytes", "status_after_restart", "store_on_disk", "receiver_inbox"];

describe("val21 (RL-QMGM-01) queue management", () => {
  it("80 × 64 B drained under a 40-segment ceiling: LRU evictions reconcile exactly, status = ledger after restart = receiver inbox", async () => {
    const { report, written } = await runSuite("val21", { db: "sqlite", seed: 2121, devices: 80 });
    expect(failures(report)).toEqual([]);
    expect(report).toMatchObject({ suite: "val21", claim: "RL-QMGM-01", pass: true, backend: "none", seed: 2121, params: { devices: 80, thresholds: {} } });
    expect(report.checks.map((c) => c.name)).toEqual(CHECKS);
    expect(report.notes?.["netem_probe"]).toMatch(/^(available|unavailable)/);
    expect(written).toEqual(report);
  }, 180_000);

  it("an impossible min_evictions fails that check, and only that one", async () => {
    const { report } = await runSuite("val21", { db: "sqlite", seed: 2122, devices: 50, thresholds: { min_evictions: 1e9 } });
    expect(report.pass).toBe(false);
    expect(report.checks.filter((c) => !c.pass).map((c) => c.name)).toEqual(["evictions"]);
  }, 180_000);
});
