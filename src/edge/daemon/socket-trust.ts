import { lstat, readFile, realpath } from "node:fs/promises";
import type { Stats } from "node:fs";
import { basename, dirname, join, parse, sep } from "node:path";
import { errnoCode } from "../../lib/index.js";
import { EdgeError } from "../errors.js";

/**
 * Who may own edged's control socket and the directories above it, from
 * edgectl's side: the user running edgectl, root, and any uid the operator
 * names (`edgectl --socket-owner`, for an edged running under a dedicated
 * account).
 */
export interface SocketTrust {
  /** Extra trusted owners (uids). */
  owners?: readonly number[];
}

const GROUP_OTHER_WRITE = 0o022;
const OTHER_WRITE = 0o002;
const STICKY = 0o1000;

/**
 * Checks that the control socket at `path` is edged's and not a socket
 * another local user planted (it would receive the operator's commands and
 * answer with lies): before edgectl connects, the socket and its directory
 * are lstat-ed and refused (CONTROL_SOCKET_UNTRUSTED, exit 4) when
 *
 * - the path is a symlink, or not a socket;
 * - the socket or its directory is owned by neither the current user, root,
 *   nor a uid named with `--socket-owner`;
 * - its directory is writable by group or others (even sticky: anyone could
 *   have created the name first), or an ancestor directory is writable by
 *   others (unless sticky, like /tmp), or an ancestor is owned by another
 *   user (it could move the directory away and put its own in place).
 *
 * The directory is resolved once (realpath) and the returned path, inside the
 * checked directory, is the one to connect to: a symlink swapped into the path
 * afterwards is never followed. A missing socket or directory stays
 * CONTROL_SOCKET_UNAVAILABLE (edged is not running). Without POSIX owners
 * (no `process.getuid`), nothing is checked.
 */
export async function trustedSocketPath(path: string, trust: SocketTrust = {}): Promise<string> {
  const me = process.getuid?.();
  if (me === undefined) return path;
  const owners = new Set<number>([me, 0, ...(trust.owners ?? [])]);
  let dir: string;
  try {
    dir = await realpath(dirname(path));
  } catch (e) {
    if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR") throw missing(path, e);
    throw e;
  }
  await checkAncestors(path, dir, owners);
  const real = join(dir, basename(path));
  let st: Stats;
  try {
    st = await lstat(real);
  } catch (e) {
    if (errnoCode(e) === "ENOENT") throw missing(path, e);
    throw e;
  }
  if (st.isSymbolicLink()) throw untrusted(path, `${real} is a symbolic link, not edged's socket`);
  if (!st.isSocket()) throw untrusted(path, `${real} is not a socket`);
  if (!owners.has(st.uid)) throw untrusted(path, `${real} is owned by uid ${st.uid}, not by you (uid ${me}), root${ownerList(trust)}`);
  return real;
}

/** The socket's directory and every directory above it, from / down. */
async function checkAncestors(path: string, dir: string, owners: ReadonlySet<number>): Promise<void> {
  const root = parse(dir).root;
  const parts = dir.slice(root.length).split(sep).filter((p) => p.length > 0);
  const chain = [root, ...parts.map((_, i) => root + parts.slice(0, i + 1).join(sep))];
  for (const d of chain) {
    const st = await lstat(d);
    const own = d === dir;
    if (!owners.has(st.uid)) throw untrusted(path, `${own ? "its directory" : "the directory above it"} ${d} is owned by uid ${st.uid}, who could put another socket in its place`);
    // The socket's own directory: no group or other write at all. Above it, no other write unless sticky
    // (/tmp); group write is tolerated there (umask 002 with per-user groups would refuse most homes).
    const writable = (st.mode & (own ? GROUP_OTHER_WRITE : OTHER_WRITE)) !== 0;
    if (writable && (own || (st.mode & STICKY) === 0)) {
      throw untrusted(path, `${own ? "its directory" : "the directory above it"} ${d} is writable by ${own ? "group or others" : "others"} (mode ${(st.mode & 0o7777).toString(8).padStart(4, "0")}), so anyone could have put a socket there`);
    }
  }
}

function ownerList(trust: SocketTrust): string {
  return trust.owners && trust.owners.length > 0 ? ` or --socket-owner (${trust.owners.join(", ")})` : " or a --socket-owner";
}

function missing(path: string, e: unknown): EdgeError {
  return new EdgeError("CONTROL_SOCKET_UNAVAILABLE", `edged control socket ${path}: no socket there (edged is not running, or listens elsewhere)`, { cause: e, details: { socket: path } });
}

function untrusted(path: string, why: string): EdgeError {
  return new EdgeError("CONTROL_SOCKET_UNTRUSTED", `refusing to talk to the control socket ${path}: ${why}`, { details: { socket: path } });
}

/**
 * A `--socket-owner` value: a uid, or a user name looked up in /etc/passwd
 * (Node has no getpwnam). Undefined when the name is unknown.
 */
export async function resolveSocketOwner(value: string, passwdFile = "/etc/passwd"): Promise<number | undefined> {
  if (/^[0-9]+$/.test(value)) return Number(value);
  const text = await readFile(passwdFile, "utf8").catch(() => "");
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f[0] === value && f[2] !== undefined && /^[0-9]+$/.test(f[2])) return Number(f[2]);
  }
  return undefined;
}
