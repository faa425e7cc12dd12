import { randomBytes } from "node:crypto";
import { lstat, mkdir, readdir, readlink, rename, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { crashPoint, errnoCode, fsyncDir } from "../../lib/index.js";
import { EdgeError } from "../errors.js";
import { refuseOverlap, writeTreeDir } from "./tree.js";
import type { TreeFile } from "./tree.js";

/** The install dir's private subdirectory: the trees and the `current` symlink naming the live one. */
export const INSTALL_INTERNAL = ".autonomy-install";
const CURRENT = "current";
/** Never touched by an install (an ext4 mount point's own directory). */
const KEEP = new Set([INSTALL_INTERNAL, "lost+found"]);

/**
 * Installs exactly `files` into the runtime install dir `target`, durably,
 * working only INSIDE `target` (never beside it): under edged-precheck.service
 * the install dir is the one writable path (ProtectSystem=strict,
 * ReadWritePaths=), a bind mount that cannot be renamed (EBUSY) in a parent
 * that cannot be written (EROFS).
 *
 * Layout: `target/.autonomy-install/tree-<id>/` holds a complete tree,
 * `target/.autonomy-install/current` is a symlink to the live tree, and each
 * top-level name `N` of the runtime is a symlink `target/N →
 * .autonomy-install/current/N`. The tree is written and fsynced, then
 * `current` is replaced by rename (the atomic switch: readers see the old
 * tree or the new one), then the top-level links are made to match and the
 * old tree is removed. A crash at any point leaves the old tree live or the
 * new one; the next install (a rerun of the reconstruction) finishes the
 * links and removes leftovers. Anything else at the top level (an install of
 * the earlier layout) is replaced: the directory belongs to the runtime.
 */
export async function installRuntimeDir(target: string, files: readonly TreeFile[], opts: { outside: string }): Promise<void> {
  refuseOverlap(target, opts.outside);
  const tops = new Set(files.map((f) => f.path.split("/")[0] ?? f.path));
  for (const t of KEEP) if (tops.has(t)) throw new EdgeError("RECONSTRUCTION_FAILED", `the runtime cannot ship a top-level ${t}: the install directory reserves that name`);
  await mkdir(target, { recursive: true });
  const internal = join(target, INSTALL_INTERNAL);
  await mkdir(internal).catch((e: unknown) => {
    if (errnoCode(e) !== "EEXIST") throw e;
  });
  const live = await readlink(join(internal, CURRENT)).catch(() => undefined);
  for (const e of await readdir(internal)) if (e !== CURRENT && e !== live) await rm(join(internal, e), { recursive: true, force: true });
  const tree = `tree-${randomBytes(8).toString("hex")}`;
  await writeTreeDir(join(internal, tree), files);
  await fsyncDir(internal);
  crashPoint("tree-before-swap");
  const link = join(internal, `current.new-${randomBytes(6).toString("hex")}`);
  await symlink(tree, link);
  await rename(link, join(internal, CURRENT));
  await fsyncDir(internal);
  for (const name of tops) await ensureTopLink(target, internal, name);
  for (const e of await readdir(target)) if (!KEEP.has(e) && !tops.has(e)) await rm(join(target, e), { recursive: true, force: true });
  await fsyncDir(target);
  // The old tree and any directory of the earlier layout moved aside.
  for (const e of await readdir(internal)) if (e !== CURRENT && e !== tree) await rm(join(internal, e), { recursive: true, force: true });
}

/** Makes `target/name` the symlink `.autonomy-install/current/name`, replacing whatever is there by rename (a directory is moved aside first). */
async function ensureTopLink(target: string, internal: string, name: string): Promise<void> {
  const want = `${INSTALL_INTERNAL}/${CURRENT}/${name}`;
  const path = join(target, name);
  const st = await lstat(path).catch((e: unknown) => {
    if (errnoCode(e) === "ENOENT") return undefined;
    throw e;
  });
  if (st?.isSymbolicLink() && (await readlink(path)) === want) return;
  if (st?.isDirectory()) await rename(path, join(internal, `old-${randomBytes(6).toString("hex")}`));
  const tmp = join(internal, `link-${randomBytes(6).toString("hex")}`);
  await symlink(want, tmp);
  await rename(tmp, path);
}
