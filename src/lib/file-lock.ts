import { readFileSync } from "node:fs";
import { link, open, readFile, stat, unlink } from "node:fs/promises";
import { errnoCode } from "./errors.js";
import { systemClock } from "./clock.js";
import type { Clock } from "./clock.js";

export interface FileLockOptions {
  /** Give up after this long (ms). */
  timeoutMs?: number;
  /** Thrown when the lock cannot be had in time. */
  onTimeout: (holderPid: number | undefined) => Error;
  /** Clock for the deadline and a pid-less lock's age. Default {@link systemClock}. */
  clock?: Clock;
}

/**
 * Runs `fn` holding an exclusive lock file (`O_CREAT|O_EXCL`, holding our pid
 * and the kernel's boot id). A lock left by a process that no longer exists
 * (SIGKILL) or written during another boot (power loss: the lock sits on a
 * persistent disk, and after the reboot its pid may well belong to some live
 * process) is broken, so a crash never wedges the node. PID reuse within one
 * boot could still make a stale lock look live; then the caller times out
 * with a clear message instead of corrupting state.
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, opts: FileLockOptions): Promise<T> {
  const release = await acquireFileLock(path, opts);
  try {
    return await fn();
  } finally {
    await release();
  }
}

/** Takes the lock and returns its release function (for locks held across calls, like an open WAL). */
export async function acquireFileLock(path: string, opts: FileLockOptions): Promise<() => Promise<void>> {
  const clock = opts.clock ?? systemClock;
  const deadline = clock.now() + (opts.timeoutMs ?? 10_000);
  for (;;) {
    try {
      await createWithPid(path);
      return () => unlink(path).catch(() => undefined);
    } catch (e) {
      if (errnoCode(e) !== "EEXIST") throw e;
      const { pid: holder, bootId } = await lockHolder(path);
      const otherBoot = bootId !== undefined && CURRENT_BOOT_ID !== undefined && bootId !== CURRENT_BOOT_ID;
      if ((holder !== undefined && (otherBoot || !isAlive(holder))) || (holder === undefined && (await olderThan(path, EMPTY_LOCK_GRACE_MS, clock)))) {
        await unlink(path).catch(() => undefined);
        continue;
      }
      if (clock.now() > deadline) throw opts.onTimeout(holder);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/**
 * A lock file without a pid can only be left by a power cut (its content was
 * never fsynced); a live creator publishes it with the pid already inside.
 * After this grace it is broken like any stale lock.
 */
const EMPTY_LOCK_GRACE_MS = 2_000;

/** Publishes the lock with its content in one step: write a private temp, then hard-link it into place (fails with EEXIST when held). */
async function createWithPid(path: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  const fh = await open(tmp, "wx", 0o600);
  try {
    await fh.writeFile(CURRENT_BOOT_ID === undefined ? String(process.pid) : `${process.pid}\n${CURRENT_BOOT_ID}\n`);
  } finally {
    await fh.close();
  }
  try {
    await link(tmp, path);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

async function olderThan(path: string, ms: number, clock: Clock): Promise<boolean> {
  try {
    return clock.now() - (await stat(path)).mtimeMs > ms;
  } catch {
    return true;
  }
}

/**
 * The kernel's id of this boot (Linux: a fresh random UUID at every boot), or
 * undefined where there is none; then only the pid is checked, as before.
 */
const CURRENT_BOOT_ID: string | undefined = readBootId();

function readBootId(): string | undefined {
  try {
    const id = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    return /^[0-9a-f-]{8,64}$/i.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

/** The lock's content: `pid` (older writers) or `pid\nboot_id`. */
async function lockHolder(path: string): Promise<{ pid?: number; bootId?: string }> {
  try {
    const [first = "", second = ""] = (await readFile(path, "utf8")).split("\n").map((l) => l.trim());
    const pid = Number(first);
    return {
      ...(Number.isSafeInteger(pid) && pid > 0 ? { pid } : {}),
      ...(second !== "" ? { bootId: second } : {}),
    };
  } catch {
    return {};
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoCode(e) === "EPERM";
  }
}
