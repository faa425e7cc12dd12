import { isIP } from "node:net";
import type { FastifyInstance } from "fastify";
import { errnoCode, listenUnixSocket } from "../lib/index.js";
import { RuntimeError } from "./errors.js";

/** Where the tool server listens: a TCP address, or a unix socket file with its mode. */
export type ListenAddress = { host: string; port: number } | { path: string; mode?: number };

/** Default mode of the socket file: the runtime's user only. `0o660` lets a group of agents in. */
export const DEFAULT_SOCKET_MODE = 0o600;

/** True for `localhost`, 127.0.0.0/8, `::1` and the IPv4-mapped loopback. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "").replace(/\.$/, "");
  if (h === "localhost") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  if (isIP(h) !== 6) return false;
  // The URL parser spells every IPv6 address one canonical way (`::1`, `::ffff:7f00:1`).
  const canonical = new URL(`http://[${h}]/`).hostname.replace(/^\[|\]$/g, "");
  return canonical === "::1" || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(canonical);
}

/**
 * Refuses a listen address outside loopback unless the server is TLS and at
 * least one token exists: a wider listener without TLS would send tokens and
 * tool output in clear text to anyone on the path.
 */
export function checkListenAddress(addr: ListenAddress, o: { tls: boolean; activeTokens: number }): void {
  if ("path" in addr || isLoopbackHost(addr.host)) return;
  const missing = [o.tls ? undefined : "TLS (--tls-cert and --tls-key, or [tls] in the runtime config)", o.activeTokens > 0 ? undefined : "at least one token (autonomy runtime token create)"].filter((x) => x !== undefined);
  if (missing.length === 0) return;
  throw new RuntimeError("RUNTIME_LISTEN_REFUSED", `refusing to listen on ${addr.host}:${addr.port}: it is not a loopback address and the runtime has no ${missing.join(" and no ")}`);
}

/**
 * Listens on a TCP address; the operating system's refusals become what the
 * operator can act on: a port in use is RUNTIME_LISTEN_IN_USE, an address
 * this machine does not have or a port it may not bind RUNTIME_LISTEN_REFUSED.
 * Returns the server's URL.
 */
export async function listenTcp(app: FastifyInstance, host: string, port: number): Promise<string> {
  try {
    return await app.listen({ host, port });
  } catch (e) {
    const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
    const code = errnoCode(e);
    if (code === "EADDRINUSE") throw new RuntimeError("RUNTIME_LISTEN_IN_USE", `cannot listen on ${where}: port in use, choose another --listen`, { hint: "another process (perhaps another runtime) listens on this port: stop it, or pass --listen 127.0.0.1:<free port>", cause: e });
    if (code === "EADDRNOTAVAIL") throw new RuntimeError("RUNTIME_LISTEN_REFUSED", `cannot listen on ${where}: this machine has no such address`, { hint: "pass an address of this machine, such as --listen 127.0.0.1:7777", cause: e });
    if (code === "EACCES") throw new RuntimeError("RUNTIME_LISTEN_REFUSED", `cannot listen on ${where}: permission denied (ports below 1024 need privileges)`, { hint: "choose a port of 1024 or above, such as --listen 127.0.0.1:7777", cause: e });
    throw e;
  }
}

/**
 * Listens on a unix socket with its final mode from the first moment (see
 * {@link listenUnixSocket}): a stale socket left by a crash is replaced, a
 * live one or anything that is not a socket is RUNTIME_LISTEN_IN_USE.
 * Returns the function that removes the socket file when the server closes
 * (only if it is still ours).
 */
export function listenUnix(app: FastifyInstance, path: string, mode = DEFAULT_SOCKET_MODE): Promise<() => Promise<void>> {
  return listenUnixSocket(app, path, {
    mode,
    inUse: (message, why) => new RuntimeError("RUNTIME_LISTEN_IN_USE", message, why === "not-a-socket" ? { hint: "remove it yourself if it is not needed, or choose another socket path" } : {}),
  });
}
