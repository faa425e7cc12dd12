import { randomBytes } from "node:crypto";
import { lstat, mkdir, readdir, readlink, rename, rm, symlink, unlink } from "node:fs/promises";
import { join } from "node:path";
import { crashPoint, errnoCode, fsyncDir } from "../../lib/index.js";
import { EdgeError } from "../errors.js";
import { refuseRealOverlap, writeTreeDir } from "./tree.js";
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
 * links and removes leftovers.
 *
 * Only what we own is touched: `.autonomy-install` (a real directory, checked
 * with lstat, owned by us: it marks the install dir as ours) and top-level
 * symlinks into it. The first install needs an empty directory (or none); a
 * foreign file is never deleted or replaced: the install is refused first.
 */
export async function installRuntimeDir(target: string, files: readonly TreeFile[], opts: { outside: string }): Promise<void> {
  await refuseRealOverlap(target, opts.outside);
  const tops = new Set(files.map((f) => f.path.split("/")[0] ?? f.path));
  for (const t of KEEP) if (tops.has(t)) throw new EdgeError("RECONSTRUCTION_FAILED", `the runtime cannot ship a top-level ${t}: the install directory reserves that name`);
  await mkdir(target, { recursive: true });
  const internal = await claimInstallDir(target);
  for (const name of tops) await refuseForeign(target, name);
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
  // Our links to names the new runtime no longer ships; nothing else at the top level is ours to remove.
  for (const e of await readdir(target)) if (!KEEP.has(e) && !tops.has(e) && (await ownLink(join(target, e)))) await unlink(join(target, e));
  await fsyncDir(target);
  // The old tree and any leftovers of a killed install.
  for (const e of await readdir(internal)) if (e !== CURRENT && e !== tree) await rm(join(internal, e), { recursive: true, force: true });
}

/**
 * Returns `target/.autonomy-install`, creating it only in an empty directory.
 * An existing one must be a real directory owned by us (lstat: a planted
 * symlink would redirect every removal in it); a non-empty directory without
 * it holds someone else's files (`/usr/local/bin`) and is refused.
 */
async function claimInstallDir(target: string): Promise<string> {
  const internal = join(target, INSTALL_INTERNAL);
  const st = await lstat(internal).catch((e: unknown) => {
    if (errnoCode(e) === "ENOENT") return undefined;
    throw e;
  });
  if (st !== undefined) {
    if (!st.isDirectory()) throw new EdgeError("RECONSTRUCTION_FAILED", `${internal} is not a directory (a ${st.isSymbolicLink() ? "symbolic link" : "file"}): it was not made by edged; refusing to install through it`, { hint: `remove ${internal} and check who planted it` });
    const uid = process.geteuid?.();
    if (uid !== undefined && st.uid !== uid) throw new EdgeError("RECONSTRUCTION_FAILED", `${internal} is owned by uid ${st.uid}, not by this process (uid ${uid}): refusing to install through it`);
    return internal;
  }
  const foreign = (await readdir(target)).filter((e) => !KEEP.has(e));
  if (foreign.length > 0) {
    throw new EdgeError("RECONSTRUCTION_FAILED", `${target} already holds files that are not the runtime's (${foreign.slice(0, 5).join(", ")}${foreign.length > 5 ? ", …" : ""}): the runtime is installed only into an empty directory of its own`, {
      hint: "set [bootstrap] runtime_install_dir to a new or empty directory (e.g. /opt/autonomy/runtime)",
    });
  }
  await mkdir(internal, { mode: 0o755 });
  await fsyncDir(target);
  return internal;
}

/** True when `path` is one of our top-level links (a symlink into `.autonomy-install/`). */
async function ownLink(path: string): Promise<boolean> {
  const st = await lstat(path).catch(() => undefined);
  return st?.isSymbolicLink() === true && (await readlink(path)).startsWith(`${INSTALL_INTERNAL}/`);
}

/** A top-level name the runtime ships must be absent or one of our links: a foreign file there is refused before anything is written. */
async function refuseForeign(target: string, name: string): Promise<void> {
  const path = join(target, name);
  const exists = await lstat(path).then(() => true, (e: unknown) => {
    if (errnoCode(e) === "ENOENT") return false;
    throw e;
  });
  if (exists && !(await ownLink(path))) throw new EdgeError("RECONSTRUCTION_FAILED", `${path} exists and was not installed by edged: refusing to replace it`, { hint: `move ${path} away, or install the runtime into a directory of its own` });
}

/** Makes `target/name` the symlink `.autonomy-install/current/name` (it is absent or already ours: {@link refuseForeign}), replacing by rename. */
async function ensureTopLink(target: string, internal: string, name: string): Promise<void> {
  const want = `${INSTALL_INTERNAL}/${CURRENT}/${name}`;
  const path = join(target, name);
  if ((await ownLink(path)) && (await readlink(path)) === want) return;
  const tmp = join(internal, `link-${randomBytes(6).toString("hex")}`);
  await symlink(want, tmp);
  await rename(tmp, path);
}
