import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import type { FastifyInstance } from "fastify";
import { listenUnixSocket } from "../../lib/index.js";
import { EdgeError } from "../errors.js";

/** Where edged listens unless `--control-socket` says otherwise (the original's default). */
export const DEFAULT_CONTROL_SOCKET = "/run/edged/ctl.sock";

const SOCKET_MODE = 0o600;
const DIR_MODE = 0o700;

/**
 * Serves `app` on the unix socket `path` with mode 0600 from the first
 * moment (see {@link listenUnixSocket}: bound in a private directory,
 * chmod-ed, renamed into place). The parent directory is created 0700 when
 * missing (an existing one keeps its mode: it may be shared, like /run). A
 * stale socket left by a killed edged is replaced; a live one, or anything
 * that is not a socket, is CONTROL_SOCKET_IN_USE. Returns the function that
 * removes the socket file (only when it is still ours).
 */
export async function listenControlSocket(app: FastifyInstance, path: string): Promise<() => Promise<void>> {
  await mkdir(dirname(path), { recursive: true, mode: DIR_MODE });
  return listenUnixSocket(app, path, {
    mode: SOCKET_MODE,
    inUse: (message, why) => new EdgeError("CONTROL_SOCKET_IN_USE", message, why === "not-a-socket" ? { hint: "remove it yourself if it is not needed, or pass another --control-socket" } : {}),
  });
}
