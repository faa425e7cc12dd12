/**
 * VAL19 (RL-IMPW-01/02/03) for real at a reduced size: real `edged run` children (the
 * built bin/edged.js — `npm run build` first) over mTLS on loopback, driven
 * through their control sockets; and an impossible threshold shown to fail
 * its check (the check measures, it is not a constant).
 */
import { describe, expect, it } from "vitest";
import { failures, runSuite } from "../helpers/proof-run.js";

const CHECKS = ["outage_deadlettered", "outage_nothing_acked", "deadletter_retry_delivered", "bandwidth_1mbps_delivered", "bandwidth_10mbps_delivered", "latency_200ms_delivered", "latency_200ms_impaired_ms", "latency_200ms_delivery_ms", "latency_200ms_deadletters", "latency_500ms_delivered", "latency_500ms_impaired_ms", "latency_500ms_delivery_ms", "latency_500ms_deadletters", "cut_connection_cut", "cut_retried_delivered", "cut_inbox_once", "inbox_missing", "inbox_duplicates"];

describe("val19 (RL-IMPW-01/02/03) relay impairment", () => {
  it("outage → every segment dead-lettered → retried and delivered; 1/10 Mbps and 200/500 ms dial delay delivered; a cut connection retried, delivered once", async () => {
    const { report, written } = await runSuite("val19", { db: "sqlite", seed: 1919, devices: 6 });
    expect(failures(report)).toEqual([]);
    expect(report).toMatchObject({ suite: "val19", claim: "RL-IMPW-01/02/03", pass: true, backend: "none", seed: 1919, params: { devices: 6, thresholds: {} } });
    expect(report.checks.map((c) => c.name)).toEqual(CHECKS);
    expect(report.notes?.["netem_probe"]).toMatch(/^(available|unavailable)/);
    expect(written).toEqual(report);
  }, 180_000);

  it("an impossible latency_200ms_delivery_ms fails that check, and only that one", async () => {
    const { report } = await runSuite("val19", { db: "sqlite", seed: 1920, devices: 3, thresholds: { latency_200ms_delivery_ms: 0 } });
    expect(report.pass).toBe(false);
    expect(report.checks.filter((c) => !c.pass).map((c) => c.name)).toEqual(["latency_200ms_delivery_ms"]);
  }, 180_000);
});
