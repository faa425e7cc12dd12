import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { lstat, mkdir, open, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { crashPoint, errnoCode, fsyncDir, pathOverlap, realPathOverlap, writeFileSynced } from "../../lib/index.js";
import { EdgeError } from "../errors.js";

/** One file of a tree to install: a safe relative path (checked by the manifest), its bytes and mode. */
export interface TreeFile {
  path: string;
  bytes: Uint8Array;
  mode: number;
}

/**
 * Installs exactly `files` as the directory `target`, durably: a sibling temp
 * directory is written (each file fsynced, each directory fsynced), then
 * swapped in by rename and the parent fsynced. Readers see the old tree or the
 * new one; a crash leaves at most a stray `.<name>.*` sibling, which the next
 * install removes. The bytes come from the caller, never from a re-read.
 */
export async function installTree(target: string, files: readonly TreeFile[], opts: { outside?: string } = {}): Promise<void> {
  if (opts.outside !== undefined) await refuseRealOverlap(target, opts.outside);
  const parent = dirname(target);
  const name = basename(target);
  await mkdir(parent, { recursive: true });
  await recoverInterruptedSwap(target);
  await removeStrays(parent, name);
  const tmp = join(parent, `.${name}.new-${randomBytes(6).toString("hex")}`);
  await writeTreeDir(tmp, files);
  crashPoint("tree-before-swap");
  const old = join(parent, `.${name}.old-${randomBytes(6).toString("hex")}`);
  const hadOld = await rename(target, old).then(() => true, (e: unknown) => {
    if (errnoCode(e) === "ENOENT") return false;
    throw e;
  });
  await rename(tmp, target);
  await fsyncDir(parent);
  if (hadOld) await rm(old, { recursive: true, force: true });
}

/**
 * Writes `files` into the NEW directory `dir` (created 0755): each file
 * fsynced with exactly its mode, each directory fsynced.
 */
export async function writeTreeDir(dir: string, files: readonly TreeFile[]): Promise<void> {
  await mkdir(dir, { mode: 0o755 });
  const dirs = new Set<string>([dir]);
  for (const f of files) {
    const path = join(dir, f.path);
    await mkdir(dirname(path), { recursive: true });
    for (let d = dirname(path); d.startsWith(dir); d = dirname(d)) dirs.add(d);
    await writeFileSynced(path, f.bytes, f.mode);
    // open(…, mode) is filtered by the umask: set the signed mode exactly.
    const fh = await open(path, "r");
    try {
      await fh.chmod(f.mode);
    } finally {
      await fh.close();
    }
  }
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) await fsyncDir(d);
}

/**
 * The config rule again at install time, over real paths (symlinks of the
 * existing prefix resolved): the config may have been checked before a link
 * was planted. Fails closed: an unresolvable path is refused.
 */
export async function refuseRealOverlap(target: string, root: string): Promise<void> {
  refuseOverlap(target, root);
  let overlap;
  try {
    overlap = await realPathOverlap(target, root);
  } catch (e) {
    throw new EdgeError("RECONSTRUCTION_FAILED", `refusing to install into ${target}: its real location (or the state root's) cannot be resolved (${errnoCode(e) ?? String(e)})`, { cause: e });
  }
  if (overlap !== undefined) throw new EdgeError("RECONSTRUCTION_FAILED", `refusing to install into ${target}: through a symbolic link it ${{ same: "is", inside: "is inside", above: "contains" }[overlap]} the state root ${root}`);
}

/** Backstop of the config rule: an install that would replace (or sit in) a directory it does not own is refused before anything is written. */
export function refuseOverlap(target: string, root: string): void {
  const overlap = pathOverlap(target, root);
  if (overlap !== undefined) throw new EdgeError("RECONSTRUCTION_FAILED", `refusing to install into ${target}: it ${{ same: "is", inside: "is inside", above: "contains" }[overlap]} the state root ${root}`);
}

/**
 * A kill between installTree's two renames leaves no `target` but the
 * complete previous tree as `.<name>.old-*` (renamed whole, so complete): put
 * it back, rather than deleting the only copy (the staged runtime a later
 * reconstruction needs). Called before an install and before reading `target`.
 */
export async function recoverInterruptedSwap(target: string): Promise<boolean> {
  const parent = dirname(target);
  const name = basename(target);
  const exists = await lstat(target).then(() => true, (e: unknown) => {
    if (errnoCode(e) === "ENOENT") return false;
    throw e;
  });
  if (exists) return false;
  const olds = await readdir(parent).then((es) => es.filter((e) => e.startsWith(`.${name}.old-`)), (e: unknown) => {
    if (errnoCode(e) === "ENOENT") return [];
    throw e;
  });
  // One swap at a time (callers hold their lock), so at most one; if several, the newest.
  const dated = await Promise.all(olds.map(async (e) => ({ e, t: (await lstat(join(parent, e))).mtimeMs })));
  const newest = dated.sort((a, b) => b.t - a.t)[0];
  if (newest === undefined) return false;
  await rename(join(parent, newest.e), target);
  await fsyncDir(parent);
  return true;
}

/** Leftovers of an install killed mid-way (`.<name>.new-*` / `.<name>.old-*`). */
async function removeStrays(parent: string, name: string): Promise<void> {
  for (const entry of await readdir(parent)) {
    if (entry.startsWith(`.${name}.new-`) || entry.startsWith(`.${name}.old-`)) await rm(join(parent, entry), { recursive: true, force: true });
  }
}

/**
 * Reads a staged file once, refusing anything but a regular file of exactly
 * `size` bytes (checked on the open descriptor before reading: a symlink, a
 * FIFO or a grown file is refused, not followed or read without bound).
 */
export async function readExact(path: string, size: number, code: "RUNTIME_MANIFEST_INVALID" | "RECONSTRUCTION_FAILED"): Promise<Buffer> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    throw new EdgeError(code, `cannot open ${path}: ${errnoCode(e) ?? String(e)}`, { cause: e });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new EdgeError(code, `${path} is not a regular file`);
    if (st.size !== size) throw new EdgeError(code, `${path} is ${st.size} bytes, the signed manifest says ${size}`);
    const buf = Buffer.alloc(size);
    let off = 0;
    while (off < size) {
      const { bytesRead } = await fh.read(buf, off, size - off, off);
      if (bytesRead === 0) throw new EdgeError(code, `${path} shrank while being read`);
      off += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}
