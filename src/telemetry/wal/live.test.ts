import { describe, expect, it } from "vitest";
import { LiveWal } from "./index.js";
import type { WalLogger } from "./index.js";
import { PowerLossFs } from "../../../test/helpers/power-loss-fs.js";

const DIR = "/node/telemetry";

function capture(): WalLogger & { msgs: string[] } {
  const msgs: string[] = [];
  return { msgs, warn: (_o, m) => void msgs.push(m), error: (_o, m) => void msgs.push(m) };
}

async function until(f: () => boolean, ms = 2_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("LiveWal", () => {
  it("after a failed write (ENOSPC) reopens by itself, keeps every acknowledged entry, and appends continue", async () => {
    const fs = new PowerLossFs();
    await fs.mkdirDurable(DIR);
    const log = capture();
    const wal = await LiveWal.open(DIR, { fs, log, retryMs: 10 });
    expect(await wal.append({ n: 1 })).toBe(1);
    expect(await wal.append({ n: 2 })).toBe(2);
    fs.failAfter(1, "ENOSPC"); // the next write: the disk is full, once
    await expect(wal.append({ n: "lost" })).rejects.toMatchObject({ code: "WAL_DISK_FULL" });
    expect(wal.state).toBe("reopening");
    await until(() => wal.reopens === 1);
    expect(wal.state).toBe("ok");
    expect(log.msgs.some((m) => m.startsWith("WAL_REOPENED"))).toBe(true);
    expect(await wal.append({ n: 3 })).toBe(3);
    expect((await wal.readFrom(1)).map((e) => e.event.n)).toEqual([1, 2, 3]);
    await wal.close();
  });

  it("keeps retrying with backoff while the disk stays full, and resumes once it is not", async () => {
    const fs = new PowerLossFs();
    await fs.mkdirDurable(DIR);
    const wal = await LiveWal.open(DIR, { fs, log: capture(), retryMs: 5, maxRetryMs: 20 });
    await wal.append({ n: 1 });
    fs.failAfter(1, "ENOSPC", { persistent: true });
    await expect(wal.append({ n: 2 })).rejects.toMatchObject({ code: "WAL_DISK_FULL" });
    await new Promise((r) => setTimeout(r, 80)); // several reopen attempts fail meanwhile (recovery must write)
    expect(wal.reopens).toBe(0);
    fs.disarm();
    await until(() => wal.reopens === 1);
    expect(await wal.append({ n: 3 })).toBe(2);
    await wal.close();
  });

  it("close() during a reopen stops it", async () => {
    const fs = new PowerLossFs();
    await fs.mkdirDurable(DIR);
    const wal = await LiveWal.open(DIR, { fs, log: capture(), retryMs: 1_000 });
    fs.failAfter(1, "EIO");
    await expect(wal.append({ n: 1 })).rejects.toMatchObject({ code: "WAL_IO" });
    const t0 = Date.now();
    await wal.close();
    expect(Date.now() - t0).toBeLessThan(500); // the 1 s backoff is cut short
    expect(wal.reopens).toBe(0);
  });
});
