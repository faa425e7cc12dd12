import { resolve, sep } from "node:path";

/**
 * How `path` sits relative to `root` (both made absolute, lexically):
 * "same", "inside" (a descendant), "above" (an ancestor), or undefined when
 * neither contains the other. A directory that is replaced or deleted as a
 * whole must never be one of the first three for a root it does not own.
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
