/**
 * Adversarial review, session 3 (helper adv): a clock that jumps (RTC reset,
 * a wrong NTP server, an operator's `date -s`), restarts, and a SIGHUP storm.
 * `attack: …` tests that fail are findings; the others are regression tests
 * for attacks that held.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createBandwidthLimiter, openRelayLedger } from "../../../src/edge/index.js";
import type { EdgeConfig } from "../../../src/edge/index.js";
import { openRelayParts } from "../../../src/edge/daemon/relay-parts.js";
import { startEdgeDaemon } from "../../../src/edge/daemon/daemon.js";
import type { EdgeDaemon } from "../../../src/edge/daemon/daemon.js";
import { initCa, issueCert } from "../../../src/pki/index.js";
import { createLogger } from "../../../src/observability/index.js";
import { loadJsonEdgeConfig, recordingParts, testEdgeConfig } from "../../helpers/relay-parts-double.js";

const DAY = 86_400_000;
const QUOTA = { bytes_per_second: 0, daily_quota_bytes: 1000, quota_reset_utc: "00:00" };
const silent = createLogger({ name: "adv3", level: "silent" });
/** Noon UTC, so a day's reset is 12 h either side. */
const NOON = Date.UTC(2026, 11, 6, 12, 0, 0);

function settableClock(at: number): { now: () => number; set: (t: number) => void } {
  let t = at;
  return { now: () => t, set: (v) => { t = v; } };
}

describe("adversarial review 3: a clock that jumps, and restarts", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "adv3-clock-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("attack: a clock stepped a year forward and then corrected does not leave the daily quota exhausted for a year", () => {
    const clock = settableClock(NOON);
    const bw = createBandwidthLimiter({ ...QUOTA }, { clock });
    clock.set(NOON + 365 * DAY); // a wrong NTP server, for a minute
    expect(bw.reserveQuota(1000)).toBe(true); // the day's quota is spent during that minute
    clock.set(NOON + 60_000); // corrected
    clock.set(NOON + DAY); // the next real day, past its 00:00 reset
    expect(bw.reserveQuota(1), `the day still ends at ${bw.snapshot().quota_resets_at}`).toBe(true);
  });

  it("attack: restarting edged does not hand out a second daily quota for the same day (the day's use survives a restart)", async () => {
    const ca = join(dir, "ca");
    await initCa({ outDir: ca });
    const id = await issueCert({ caDir: ca, name: "edge-a" });
    const base = testEdgeConfig(join(dir, "edge.json"), join(dir, "state"), { bandwidth: { ...QUOTA } });
    const config: EdgeConfig = { ...base, transport: { certFile: id.certFile, keyFile: id.keyFile, caFile: join(ca, "ca.crt") } };
    const clock = settableClock(NOON);
    const first = await openRelayParts(config, { clock, log: silent });
    expect(first.bandwidth.reserveQuota(1000)).toBe(true);
    await first.close();
    // A crash loop, `systemctl restart edged`, or a SIGKILL by the OOM killer: same day, a minute later.
    clock.set(NOON + 60_000);
    const second = await openRelayParts(config, { clock, log: silent });
    try {
      expect(second.bandwidth.snapshot().daily_used_bytes, "daily use after a restart").toBe(1000);
      expect(second.bandwidth.reserveQuota(1)).toBe(false);
    } finally {
      await second.close();
    }
  });

  it("attack: a clock stepped forward past the retention period (RTC/NTP error) does not purge every dead letter for good", async () => {
    const clock = settableClock(NOON);
    const l = await openRelayLedger(join(dir, "ledger"), { clock });
    try {
      const seg = { id: "e".repeat(64), size: 10, kind: "data" as const };
      await l.schedule(seg, ["edge-b"], "all_peers");
      await l.deadletter(seg.id, "edge-b", { code: "RELAY_PEER_UNREACHABLE", message: "down" });
      clock.set(NOON + 10 * 365 * DAY); // a minute in 2036
      await l.purgeExpired(7 * DAY);
      clock.set(NOON + 60_000); // corrected: the dead letter is one minute old
      expect(l.deadletters(10).map((d) => d.segment_id), "a one-minute-old dead letter was purged by a 7-day retention").toEqual([seg.id]);
    } finally {
      await l.close();
    }
  });

  // ---- held (regression tests) ----

  it("attack: a clock set back across the quota reset (twice) never grants a second quota for the same day", () => {
    const clock = settableClock(NOON);
    const bw = createBandwidthLimiter({ ...QUOTA }, { clock });
    expect(bw.reserveQuota(1000)).toBe(true);
    for (const back of [NOON - DAY, NOON - 2 * DAY, NOON - 13 * 3_600_000]) {
      clock.set(back);
      expect(bw.reserveQuota(1), `clock at ${new Date(back).toISOString()}`).toBe(false);
    }
    clock.set(NOON + 11 * 3_600_000); // 23:00 the same day
    expect(bw.reserveQuota(1)).toBe(false);
    clock.set(NOON + 12 * 3_600_000 + 1); // past the real reset
    expect(bw.reserveQuota(1000)).toBe(true);
  });
});

describe("adversarial review 3: a SIGHUP storm", () => {
  let dir: string;
  let daemon: EdgeDaemon | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "adv3-hup-"));
  });
  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("attack: 300 SIGHUPs while edge.toml is being rewritten coalesce into a few reloads (the queue does not grow with the signals), and the last file wins", async () => {
    const cfgPath = join(dir, "edge.json");
    const config = testEdgeConfig(cfgPath, join(dir, "state"));
    await writeFile(cfgPath, JSON.stringify(config));
    let loads = 0;
    const load = async (p: string): Promise<EdgeConfig> => {
      loads++;
      await new Promise((r) => setTimeout(r, 5)); // a read that takes a moment, as on a busy disk
      return loadJsonEdgeConfig(p);
    };
    const parts = recordingParts();
    daemon = await startEdgeDaemon(config, { controlSocket: join(dir, "run", "ctl.sock"), parts: parts.factory, loadConfig: load, log: silent, watchConfig: false });
    const d = daemon;
    const pending: Promise<unknown>[] = [];
    for (let i = 1; i <= 300; i++) {
      if (i % 50 === 0) await writeFile(cfgPath, JSON.stringify({ ...config, bandwidth: { ...config.bandwidth, bytes_per_second: i * 1000 } }));
      pending.push(d.reload()); // what signals.ts does on each SIGHUP
    }
    await Promise.all(pending);
    expect(parts.last().bandwidth.snapshot().bytes_per_second, "the last file wins").toBe(300_000);
    // "a request during a reload runs once after it" (daemon.ts): 300 signals, a handful of reads.
    expect(loads, "edge.toml reads for 300 SIGHUPs").toBeLessThanOrEqual(10);
  }, 30_000);
});
