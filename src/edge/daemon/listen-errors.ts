import { errnoCode } from "../../lib/index.js";
import { EdgeError } from "../errors.js";

/**
 * A failure to listen on a TCP address becomes LISTEN_ADDRESS_IN_USE naming
 * the flag or key that chose it (`what`, e.g. "[transport] listen"), so an
 * ordinary start-up failure is not reported as a bug. Other errors pass.
 */
export function listenFailure(e: unknown, what: string, address: string): unknown {
  const code = errnoCode(e);
  if (code === "EADDRINUSE") return new EdgeError("LISTEN_ADDRESS_IN_USE", `${what} ${address} is already in use by another process`, { cause: e });
  if (code === "EACCES" || code === "EADDRNOTAVAIL") {
    const why = code === "EACCES" ? "is not permitted (a port below 1024 needs root or CAP_NET_BIND_SERVICE)" : "is not an address of this host";
    return new EdgeError("LISTEN_ADDRESS_IN_USE", `${what} ${address} ${why}`, { cause: e, hint: `change ${what} to an address of this host and a port edged may bind` });
  }
  return e;
}
