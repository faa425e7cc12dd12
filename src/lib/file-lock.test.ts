import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { withFileLock } from "./file-lock.js";

const BOOT_ID = "/proc/sys/kernel/random/boot_id";

describe("withFileLock", () => {
  it("records the pid and this boot's id in the lock", async () => {
    const path = join(await mkdtemp(join(tmpdir(), "flock-")), "x.lock");
    const content = await withFileLock(path, () => readFile(path, "utf8"), { onTimeout: () => new Error("timeout") });
    expect(content.split("\n")[0]).toBe(String(process.pid));
    if (existsSync(BOOT_ID)) expect(content.split("\n")[1]).toBe((await readFile(BOOT_ID, "utf8")).trim());
  });

  it("breaks a lock taken during another boot even when its pid is alive now (power cut, pid reused)", async () => {
    if (!existsSync(BOOT_ID)) throw new Error("needs /proc/sys/kernel/random/boot_id (Linux)");
    const path = join(await mkdtemp(join(tmpdir(), "flock-")), "x.lock");
    await writeFile(path, `1\n00000000-0000-4000-8000-000000000000\n`);
    await expect(withFileLock(path, () => Promise.resolve("ran"), { timeoutMs: 200, onTimeout: () => new Error("timeout") })).resolves.toBe("ran");
  });

  it("waits for a lock held by a live process in this boot", async () => {
    const path = join(await mkdtemp(join(tmpdir(), "flock-")), "x.lock");
    const boot = existsSync(BOOT_ID) ? (await readFile(BOOT_ID, "utf8")).trim() : "";
    await writeFile(path, `1\n${boot}\n`);
    await expect(withFileLock(path, () => Promise.resolve("ran"), { timeoutMs: 200, onTimeout: (pid) => new Error(`held by ${pid}`) })).rejects.toThrow("held by 1");
  });
});
