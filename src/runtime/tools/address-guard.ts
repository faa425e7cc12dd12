import { lookup as dnsLookup } from "node:dns";
import { BlockList, isIP } from "node:net";
import type { LookupFunction } from "node:net";
import { RuntimeError } from "../errors.js";

/** Resolves a host name to all its addresses (tests inject a fake DNS). */
export type Resolver = (hostname: string) => Promise<{ address: string; family: 4 | 6 }[]>;

export const systemResolver: Resolver = (hostname) =>
  new Promise((resolve, reject) => {
    dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses) => {
      if (err) reject(err);
      else resolve(addresses.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 })));
    });
  });

/**
 * Addresses that are not the public internet: loopback, private (RFC 1918),
 * carrier-grade NAT, link-local (cloud metadata lives at 169.254.169.254),
 * unique-local, site-local, multicast, reserved and unspecified, and IPv6
 * forms that embed an IPv4 address (IPv4-compatible `::a.b.c.d`, NAT64, 6to4).
 */
const NON_PUBLIC = ((): BlockList => {
  const b = new BlockList();
  for (const [net, bits] of [["0.0.0.0", 8], ["10.0.0.0", 8], ["100.64.0.0", 10], ["127.0.0.0", 8], ["169.254.0.0", 16], ["172.16.0.0", 12], ["192.0.0.0", 24], ["192.168.0.0", 16], ["198.18.0.0", 15], ["224.0.0.0", 4], ["240.0.0.0", 4]] as const) {
    b.addSubnet(net, bits, "ipv4");
  }
  // ::/96 holds ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d (::127.0.0.1); 2002::/16 is 6to4, whose
  // addresses embed an IPv4 one (2002:7f00:1::); fec0::/10 the deprecated site-local range, still routed by some networks.
  for (const [net, bits] of [["::", 96], ["fc00::", 7], ["fe80::", 10], ["fec0::", 10], ["ff00::", 8], ["64:ff9b::", 96], ["2001:db8::", 32], ["2002::", 16]] as const) {
    b.addSubnet(net, bits, "ipv6");
  }
  return b;
})();

/** True for an address outside the public internet (an IPv4-mapped IPv6 address is judged by its IPv4 part). */
export function isNonPublic(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1]) return NON_PUBLIC.check(mapped[1], "ipv4");
  const family = isIP(address);
  if (family === 0) return true; // not an address at all: refuse
  return NON_PUBLIC.check(address, family === 6 ? "ipv6" : "ipv4");
}

/**
 * A `lookup` for http(s).request that resolves once, refuses non-public
 * addresses unless `allowPrivate`, and hands the socket exactly the address it
 * checked — so a DNS answer that changes between check and connect (DNS
 * rebinding) cannot steer the request to an internal address. IP literals
 * never reach it (Node connects to them directly; they are allow-listed by
 * exact match, which is the operator's explicit choice).
 */
export function guardedLookup(resolve: Resolver, allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname).then(
      (addresses) => {
        const wanted = options.family === 6 || options.family === "IPv6" ? 6 : options.family === 4 || options.family === "IPv4" ? 4 : undefined;
        const candidates = addresses.filter((a) => wanted === undefined || a.family === wanted);
        const blocked = candidates.filter((a) => isNonPublic(a.address));
        if (!allowPrivate && blocked.length > 0) {
          const list = blocked.map((a) => a.address).join(", ");
          return callback(new RuntimeError("TOOL_TARGET_NOT_ALLOWED", `tool.http_get: ${hostname} resolves to a non-public address (${list})`, {
            hint: "internal addresses are refused so a public name cannot be pointed at the node's network; allow them with allow_private_networks = true in the runtime config",
            details: { host: hostname, addresses: blocked.map((a) => a.address) },
          }), "", 4);
        }
        const first = candidates[0];
        if (!first) return callback(Object.assign(new Error(`${hostname}: no address`), { code: "ENOTFOUND" }), "", 4);
        if (options.all) return callback(null, [{ address: first.address, family: first.family }]);
        callback(null, first.address, first.family);
      },
      (err: unknown) => callback(err instanceof Error ? err : new Error(String(err)), "", 4),
    );
  };
}
