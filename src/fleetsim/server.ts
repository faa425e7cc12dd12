import { isIP } from "node:net";
import { FleetSimError } from "./errors.js";

/**
 * The simulator is a load generator: by default it only runs against a
 * control plane on this machine (localhost, 127.0.0.0/8, ::1), so a typo
 * cannot point a thousand devices at production. `allowRemote` lifts that
 * for a lab server the caller owns. Either way `server` is the only host
 * contacted.
 */
export function checkServer(server: string, allowRemote: boolean): void {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new FleetSimError("FLEET_SPEC_INVALID", "--server is not a URL");
  }
  if (allowRemote || isLoopback(url.hostname)) return;
  throw new FleetSimError("FLEET_SERVER_NOT_LOOPBACK", `--server ${url.host} is not a loopback address`);
}

export function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  if (isIP(h) === 6) return h === "::1" || h === "0:0:0:0:0:0:0:1" || /^::ffff:127\./.test(h);
  return false;
}
