import { connect } from "node:net";
import { chmod, lstat, mkdtemp, rename, rm, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { errnoCode } from "./errors.js";

/** A server that can listen on a unix socket path (a Fastify instance is one). */
export interface UnixListener {
  listen(opts: { path: string }): Promise<unknown>;
}

/** Why a socket path is refused: something answers on it, or it is not a socket at all (a file, a directory, a planted symlink). */
export type SocketRefusal = "live" | "not-a-socket";

export interface UnixSocketOptions {
  /** The socket file's mode, from the first moment it exists at `path` (0600: the owner only). */
  mode: number;
  /** The caller's own error for a refused path (its code and its hint); `message` already names the path. */
  inUse: (message: string, why: SocketRefusal) => Error;
}

/**
 * Listens on the unix socket `path` with its final mode from the first moment:
 * the socket is bound inside a fresh 0700 directory next to `path`, chmod-ed,
 * then renamed over `path`, so no other user can connect in between. A socket
 * file already at `path` is replaced only when nothing answers on it (left by
 * a killed process); a live one, or anything that is not a socket (checked
 * with lstat: a symlink someone planted is refused, not followed), is
 * `opts.inUse`. The parent directory must exist. Returns the function that
 * removes the socket file when the server closes, only while it is still ours
 * (another process may have replaced a socket we left).
 */
export async function listenUnixSocket(server: UnixListener, path: string, opts: UnixSocketOptions): Promise<() => Promise<void>> {
  await refuseLiveOrForeign(path, opts.inUse);
  const tmpDir = await mkdtemp(join(dirname(path), `.${basename(path)}.`));
  try {
    const tmp = join(tmpDir, "s");
    await server.listen({ path: tmp });
    await chmod(tmp, opts.mode);
    await rename(tmp, path);
  } finally {
    await rm(tmpDir, { recursive: true, force: true });
  }
  const ino = (await stat(path)).ino;
  return async () => {
    const now = await stat(path).catch(() => undefined);
    if (now?.ino === ino) await unlink(path).catch(() => undefined);
  };
}

async function refuseLiveOrForeign(path: string, inUse: UnixSocketOptions["inUse"]): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return;
    throw e;
  }
  if (!st.isSocket()) throw inUse(`${path} exists and is not a socket; refusing to replace it`, "not-a-socket");
  if (await unixSocketAnswers(path)) throw inUse(`a process is already serving on ${path}`, "live");
  await unlink(path); // a stale socket left by a crash: nobody is listening
}

/** Whether something accepts connections on the socket (ECONNREFUSED or ENOENT: nobody, a stale file). */
export function unixSocketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ path });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", (e) => resolve(errnoCode(e) !== "ECONNREFUSED" && errnoCode(e) !== "ENOENT"));
  });
}
