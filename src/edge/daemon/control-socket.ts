import { connect } from "node:net";
import { chmod, lstat, mkdir, mkdtemp, rename, rm, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { FastifyInstance } from "fastify";
import { errnoCode } from "../../lib/index.js";
import { EdgeError } from "../errors.js";

/** Where edged listens unless `--control-socket` says otherwise (the original's default). */
export const DEFAULT_CONTROL_SOCKET = "/run/edged/ctl.sock";

const SOCKET_MODE = 0o600;
const DIR_MODE = 0o700;

/**
 * Serves `app` on the unix socket `path` with mode 0600 from the first
 * moment: the socket is bound inside a fresh private directory next to
 * `path`, chmod-ed, then renamed into place, so no other user can connect in
 * between. The parent directory is created 0700 when missing (an existing one
 * keeps its mode: it may be shared, like /run). A socket file already at
 * `path` is replaced only when nothing answers on it (left by a killed
 * edged); a live one is CONTROL_SOCKET_IN_USE, and anything that is not a
 * socket is refused. Returns the function that removes the socket file (only
 * when it is still ours).
 */
export async function listenControlSocket(app: FastifyInstance, path: string): Promise<() => Promise<void>> {
  await mkdir(dirname(path), { recursive: true, mode: DIR_MODE });
  await refuseLiveOrForeign(path);
  const tmpDir = await mkdtemp(join(dirname(path), `.${basename(path)}.`));
  try {
    const tmp = join(tmpDir, "s");
    await app.listen({ path: tmp });
    await chmod(tmp, SOCKET_MODE);
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

async function refuseLiveOrForeign(path: string): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return;
    throw e;
  }
  if (!st.isSocket()) throw new EdgeError("CONTROL_SOCKET_IN_USE", `${path} exists and is not a socket; refusing to replace it`, { hint: "remove it yourself if it is not needed, or pass another --control-socket" });
  if (await answers(path)) throw new EdgeError("CONTROL_SOCKET_IN_USE", `another process already serves on ${path}`);
  // A stale socket left by a killed edged: nobody listens on it any more.
  await unlink(path);
}

/** Whether something accepts connections on the socket (ECONNREFUSED: a stale file). */
export function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ path });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", (e) => resolve(errnoCode(e) !== "ECONNREFUSED" && errnoCode(e) !== "ENOENT"));
  });
}
