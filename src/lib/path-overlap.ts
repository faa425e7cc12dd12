import { realpath } from "node:fs/promises";
import { basename, dirname, join, resolve, sep } from "node:path";
import { errnoCode } from "./errors.js";

/**
 * How `path` sits relative to `root` (both made absolute, lexically):
 * "same", "inside" (a descendant), "above" (an ancestor), or undefined when
 * neither contains the other. A directory that is replaced or deleted as a
 * whole must never be one of the first three for a root it does not own.
 * Lexical only: use {@link realPathOverlap} where a symlink could hide an overlap.
 */
export function pathOverlap(path: string, root: string): "same" | "inside" | "above" | undefined {
  const p = resolve(path);
  const r = resolve(root);
  if (p === r) return "same";
  const under = (child: string, parent: string): boolean => child.startsWith(parent.endsWith(sep) ? parent : parent + sep);
  if (under(p, r)) return "inside";
  if (under(r, p)) return "above";
  return undefined;
}

/**
 * The real path of `path` even when its tail does not exist yet: the longest
 * existing prefix with its symlinks resolved, plus the missing components as
 * written. Any error other than ENOENT/ENOTDIR is thrown (callers fail closed).
 */
export async function realPathOfPrefix(path: string): Promise<string> {
  const missing: string[] = [];
  for (let p = resolve(path); ; p = dirname(p)) {
    try {
      return join(await realpath(p), ...missing.reverse());
    } catch (e) {
      const code = errnoCode(e);
      if ((code !== "ENOENT" && code !== "ENOTDIR") || dirname(p) === p) throw e;
      missing.push(basename(p));
    }
  }
}

/**
 * {@link pathOverlap} over real paths: `/opt/autonomy → /data` overlaps a
 * state root `/data/state` although the strings do not. The lexical answer
 * counts too (an overlap either way is an overlap).
 */
export async function realPathOverlap(path: string, root: string): Promise<"same" | "inside" | "above" | undefined> {
  return pathOverlap(path, root) ?? pathOverlap(await realPathOfPrefix(path), await realPathOfPrefix(root));
}
