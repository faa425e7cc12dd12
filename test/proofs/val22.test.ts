/**
 * VAL22 (RL-DEAD-01) for real at a reduced size: real `edged run` children (the
 * built bin/edged.js — `npm run build` first) over mTLS on loopback, driven
 * through their control sockets; and an impossible threshold shown to fail
 * its check (the check measures, it is not a constant).
 */
import { describe, expect, it } from "vitest";
import { failures, runSuite } from "../helpers/proof-run.js";

const CHECKS = ["deadlettered", "sigterm_exit_code", "ledger_survives_restart", "group_r_recovery_rate", "group_u_redeadlettered", "purge_dry_run", "purge_force", "retention_swept"];

describe("val22 (RL-DEAD-01) dead letters", () => {
  it("Group R recovered (1.000), Group U dead again, dead letters survive SIGTERM + restart, purge dry run and --force, retention sweep", async () => {
    const { report, written } = await runSuite("val22", { db: "sqlite", seed: 2222, devices: 6 });
    expect(failures(report)).toEqual([]);
    expect(report).toMatchObject({ suite: "val22", claim: "RL-DEAD-01", pass: true, backend: "none", seed: 2222, params: { devices: 6, thresholds: {} } });
    expect(report.checks.map((c) => c.name)).toEqual(CHECKS);
    expect(report.notes?.["netem_probe"]).toMatch(/^(available|unavailable)/);
    expect(written).toEqual(report);
  }, 180_000);

  it("an impossible group_r_recovery_rate fails that check, and only that one", async () => {
    const { report } = await runSuite("val22", { db: "sqlite", seed: 2223, devices: 3, thresholds: { group_r_recovery_rate: 1.5 } });
    expect(report.pass).toBe(false);
    expect(report.checks.filter((c) => !c.pass).map((c) => c.name)).toEqual(["group_r_recovery_rate"]);
  }, 180_000);
});
