/**
 * The files a WAL keeps BESIDE its directory (`<dir>.lock`, `<dir>.generation`,
 * `<dir>.exporter.lock`, `<dir>.rejected.jsonl`): the seed names every file of
 * the directory itself, so what the extensions need lives in its parent.
 *
 * Every one of them is derived here, from the directory's CANONICAL path: a WAL
 * reached through a symlink (`alias -> real`) must share its lock and generation
 * with every other spelling of it, or two writers could each hold "the" lock and
 * both append seq N (docs/wal.md "Files beside the directory").
 */
import { realpathSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { errnoCode } from "../../lib/index.js";
import { WalError } from "./errors.js";

/**
 * The directory's real path: symlinks in any component resolved. A directory
 * that does not exist yet (or lives only in a test's in-memory file system) is
 * its nearest existing ancestor's real path plus the rest as typed, so the
 * result does not change once the directory is created.
 */
export function canonicalWalDir(dir: string): string {
  const rest: string[] = [];
  for (let d = resolve(dir); ; d = dirname(d)) {
    try {
      return join(realpathSync.native(d), ...rest);
    } catch (e) {
      const code = errnoCode(e);
      if ((code !== "ENOENT" && code !== "ENOTDIR") || dirname(d) === d) return resolve(dir);
      rest.unshift(basename(d));
    }
  }
}

/** `<dir>.<suffix>` in the parent of the directory's canonical path, never inside it. */
export function besideWalDir(dir: string, suffix: string): string {
  const real = canonicalWalDir(dir);
  return join(dirname(real), `${basename(real)}.${suffix}`);
}

const NOT_WRITABLE = new Set(["EROFS", "EACCES", "EPERM"]);

/**
 * Runs a write of a file beside the directory; a parent that refuses it (a WAL
 * directory that is a mount point under a read-only parent, say) becomes the
 * typed WAL_BESIDE_NOT_WRITABLE instead of an "unexpected failure".
 */
export async function besideWrite<T>(dir: string, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const code = errnoCode(e);
    if (code === undefined || !NOT_WRITABLE.has(code)) throw e;
    const parent = dirname(canonicalWalDir(dir));
    throw new WalError(
      "WAL_BESIDE_NOT_WRITABLE",
      `cannot write ${what} beside the WAL directory ${dir} (${code}): the WAL keeps its lock and generation beside its directory, in ${parent}; that directory must be writable`,
      `make ${parent} writable (or put the WAL directory under a writable parent: not directly on a mount point whose parent is read-only)`,
      { cause: e, details: { dir, parent, errno: code } },
    );
  }
}
