import { mkdir, stat } from "node:fs/promises";
import { dirname } from "node:path";
import type { FastifyInstance } from "fastify";
import { errnoCode, listenUnixSocket, messageOf } from "../../lib/index.js";
import { EdgeError } from "../errors.js";

/** Where edged listens unless `--control-socket` says otherwise (the original's default). */
export const DEFAULT_CONTROL_SOCKET = "/run/edged/ctl.sock";

const SOCKET_MODE = 0o600;
const DIR_MODE = 0o700;
/**
 * sun_path holds 108 bytes with the NUL; listenUnixSocket binds first at
 * `<dir>/.<name>.XXXXXX/s` (10 bytes longer than the path) before renaming
 * it into place, so the path itself may be 97 bytes at most. Longer, Node
 * binds a truncated path and the chmod after it fails with a baffling ENOENT.
 */
export const MAX_CONTROL_SOCKET_BYTES = 107 - 10;
/** Parent directories created at most (a path under a missing tree this deep is a typo). */
const MAX_DEPTH = 32;

function pathInvalid(path: string, why: string, cause?: unknown): EdgeError {
  return new EdgeError("CONTROL_SOCKET_PATH_INVALID", `--control-socket ${path}: ${why}`, cause === undefined ? {} : { cause });
}

/**
 * mkdir -p one level at a time: Node's recursive mkdir never settles under
 * /proc (`/proc/nope` answers ENOENT forever), which hung edged's start.
 */
async function mkdirParents(dir: string, depth = 0): Promise<void> {
  try {
    await mkdir(dir, { mode: DIR_MODE });
  } catch (e) {
    const code = errnoCode(e);
    if (code === "EEXIST") return;
    if (code !== "ENOENT" || depth >= MAX_DEPTH || dirname(dir) === dir) throw e;
    await mkdirParents(dirname(dir), depth + 1);
    await mkdir(dir, { mode: DIR_MODE }).catch((e2: unknown) => {
      if (errnoCode(e2) !== "EEXIST") throw e2;
    });
  }
}

/**
 * Serves `app` on the unix socket `path` with mode 0600 from the first
 * moment (see {@link listenUnixSocket}: bound in a private directory,
 * chmod-ed, renamed into place). The parent directory is created 0700 when
 * missing (an existing one keeps its mode: it may be shared, like /run). A
 * stale socket left by a killed edged is replaced; a live one, or anything
 * that is not a socket, is CONTROL_SOCKET_IN_USE. A path edged cannot create
 * (no permission, a parent that is a file, too long) is
 * CONTROL_SOCKET_PATH_INVALID. Returns the function that removes the socket
 * file (only when it is still ours).
 */
export async function listenControlSocket(app: FastifyInstance, path: string): Promise<() => Promise<void>> {
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_CONTROL_SOCKET_BYTES) throw pathInvalid(path, `the path is ${bytes} bytes; a unix socket path here may be at most ${MAX_CONTROL_SOCKET_BYTES} bytes`);
  const dir = dirname(path);
  try {
    await mkdirParents(dir);
    // EEXIST is also what mkdir says of a FILE at that name.
    if (!(await stat(dir)).isDirectory()) throw Object.assign(new Error(`${dir} is not a directory`), { code: "ENOTDIR" });
  } catch (e) {
    const code = errnoCode(e);
    const why = code === "EACCES" || code === "EPERM" ? `no permission to create ${dir} (as uid ${process.getuid?.() ?? "?"})`
      : code === "EEXIST" || code === "ENOTDIR" ? `a parent of ${dir} is not a directory`
      : `cannot create ${dir}: ${messageOf(e)}`;
    throw pathInvalid(path, why, e);
  }
  try {
    return await listenUnixSocket(app, path, {
      mode: SOCKET_MODE,
      inUse: (message, why) => new EdgeError("CONTROL_SOCKET_IN_USE", message, why === "not-a-socket" ? { hint: "remove it yourself if it is not needed, or pass another --control-socket" } : {}),
    });
  } catch (e) {
    // The server may be bound (at the private path): close it, or the half-started edged never exits.
    await app.close().catch(() => undefined);
    if (e instanceof EdgeError) throw e;
    const code = errnoCode(e);
    if (code === "EACCES" || code === "EPERM" || code === "ENOTDIR" || code === "EROFS") throw pathInvalid(path, `cannot bind in ${dir}: ${messageOf(e)}`, e);
    throw e;
  }
}
