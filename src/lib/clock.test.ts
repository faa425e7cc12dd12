import { afterEach, describe, expect, it } from "vitest";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { dateOf, isoTime, systemClock } from "./clock.js";
import type { Clock } from "./clock.js";
import { acquireFileLock } from "./file-lock.js";

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

describe("Clock", () => {
  it("renders the clock's instant, not the machine's", () => {
    const fixed: Clock = { now: () => Date.parse("2025-06-01T12:00:00.250Z") };
    expect(isoTime(fixed)).toBe("2025-06-01T12:00:00.250Z");
    expect(dateOf(fixed).getTime()).toBe(Date.parse("2025-06-01T12:00:00.250Z"));
  });

  it("systemClock follows Date.now", () => {
    const before = Date.now();
    const t = systemClock.now();
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(Date.now());
  });

  it("the file lock's deadline is read from the clock it is given", async () => {
    dir = await mkdtemp(join(tmpdir(), "clock-lock-"));
    const path = join(dir, "x.lock");
    const release = await acquireFileLock(path, { onTimeout: () => new Error("unused") });
    try {
      // Held by this (live) process; a clock that jumps a day ahead after the first read times out at once,
      // although the wall-clock timeout (10 s default) is far away.
      const t0 = Date.now();
      let reads = 0;
      const jumping: Clock = { now: () => (reads++ === 0 ? t0 : t0 + 86_400_000) };
      const started = Date.now();
      await expect(acquireFileLock(path, { clock: jumping, onTimeout: (pid) => new Error(`held by ${pid}`) })).rejects.toThrow(`held by ${process.pid}`);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await release();
    }
  });
});

describe("one clock shape", () => {
  it("no option of src/ is a bare clock function (`now?: () => …`): components take `clock?: Clock`", async () => {
    const src = fileURLToPath(new URL("..", import.meta.url));
    const files = (await readdir(src, { recursive: true })).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"));
    const offenders: string[] = [];
    for (const f of files) if (/\bnow\?: \(\) =>/.test(await readFile(join(src, f), "utf8"))) offenders.push(f);
    expect(offenders).toEqual([]);
  });
});
