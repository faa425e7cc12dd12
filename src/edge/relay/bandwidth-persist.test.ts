import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { BandwidthConfig, BandwidthLimiter } from "../types.js";
import { createBandwidthLimiter } from "./bandwidth.js";
import { openRelayLedger, type RelayLedger } from "./ledger.js";

/** The daily quota's use kept in the relay ledger (docs/relay.md "Bandwidth and quota"), across restarts. */

const T0 = Date.parse("2026-03-01T10:00:00.000Z");
const HOUR = 3_600_000;
const QUOTA = 1000;
const cfg: BandwidthConfig = { bytes_per_second: 0, daily_quota_bytes: QUOTA, quota_reset_utc: "00:00" };

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function ledgerPath(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "quota-"));
  dirs.push(d);
  return join(d, "ledger.lmdb");
}

/** One "run" of edged as far as the quota goes: the ledger opened, a limiter restored from it. */
async function boot(path: string, now: () => number): Promise<{ ledger: RelayLedger; bw: BandwidthLimiter }> {
  const clock = { now };
  const ledger = await openRelayLedger(path, { clock });
  const bw = createBandwidthLimiter(cfg, { clock, quotaStore: { load: () => ledger.quotaDay(), save: (d) => ledger.saveQuotaDay(d) } });
  return { ledger, bw };
}

/** Sends like the executor: reserve, wait until the reservation is durable, then (here) nothing else. */
async function charge(bw: BandwidthLimiter, bytes: number): Promise<boolean> {
  if (!bw.reserveQuota(bytes)) return false;
  await bw.flushQuota();
  return true;
}

describe("daily quota persisted in the relay ledger", () => {
  it("a restart resets the daily quota: a crash loop never spends more than daily_quota_bytes in one day", async () => {
    const path = await ledgerPath();
    let t = T0;
    let sent = 0;
    // Ten runs, each "crashing" (the ledger closed without any further write) after what it could send.
    for (let run = 0; run < 10; run++) {
      const { ledger, bw } = await boot(path, () => t);
      expect(bw.snapshot().daily_used_bytes).toBe(sent);
      while (await charge(bw, 300)) sent += 300;
      await ledger.close();
      t += 60_000;
    }
    expect(sent).toBe(900);
    // The next day brings a fresh quota.
    t = Date.parse("2026-03-02T00:00:00.000Z");
    const { ledger, bw } = await boot(path, () => t);
    expect(bw.snapshot().daily_used_bytes).toBe(0);
    expect(await charge(bw, 1000)).toBe(true);
    await ledger.close();
  });

  it("a clock set back across a restart never gives a second quota for the same day", async () => {
    const path = await ledgerPath();
    let t = Date.parse("2026-03-02T00:30:00.000Z");
    const a = await boot(path, () => t);
    expect(await charge(a.bw, 1000)).toBe(true);
    await a.ledger.close();
    t -= 2 * HOUR; // back into March 1st
    const b = await boot(path, () => t);
    expect(b.bw.snapshot()).toMatchObject({ daily_used_bytes: 1000, quota_resets_at: "2026-03-03T00:00:00.000Z" });
    expect(await charge(b.bw, 1)).toBe(false);
    await b.ledger.close();
  });

  it("a refund of unsent bytes is durable too, and a refund for a day already over is ignored", async () => {
    const path = await ledgerPath();
    let t = T0;
    const a = await boot(path, () => t);
    expect(await charge(a.bw, 800)).toBe(true);
    const day = a.bw.snapshot().quota_resets_at;
    a.bw.refundQuota(500, day);
    await a.bw.flushQuota();
    await a.ledger.close();
    const b = await boot(path, () => t);
    expect(b.bw.snapshot().daily_used_bytes).toBe(300);
    t = Date.parse("2026-03-02T01:00:00.000Z");
    expect(await charge(b.bw, 200)).toBe(true);
    b.bw.refundQuota(300, day); // yesterday's reservation: nothing to give back today
    expect(b.bw.snapshot().daily_used_bytes).toBe(200);
    await b.ledger.close();
  });
});
