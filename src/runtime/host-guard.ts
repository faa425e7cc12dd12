import type { AddressInfo } from "node:net";
import { isIP } from "node:net";
import { X509Certificate } from "node:crypto";
import { isLoopbackHost } from "./listen.js";

/**
 * The DNS-rebinding guard: a browser tricked into resolving
 * `evil.example` to 127.0.0.1 still sends `Host: evil.example`, so a request
 * is answered only when its Host names this server: a loopback name or
 * address, the address it is bound to, or a name of its TLS certificate —
 * with the port it listens on. A unix socket is not reachable from a browser
 * (and its clients send any Host), so it is not checked.
 */
export function hostAllowed(host: string | undefined, bound: AddressInfo | string | null, o: { serverNames: readonly string[]; secure: boolean }): boolean {
  if (typeof bound === "string") return true;
  if (host === undefined || host === "") return false;
  const parsed = parseHost(host);
  if (!parsed) return false;
  const port = parsed.port ?? (o.secure ? 443 : 80);
  // Not listening (app.inject in tests): no port to compare; the name rules still hold.
  if (bound !== null && port !== bound.port) return false;
  const name = parsed.name;
  if (isLoopbackHost(name)) return true;
  if (bound !== null && isIP(name) !== 0 && sameAddress(name, bound.address)) return true;
  return o.serverNames.some((n) => nameMatches(name, n));
}

function parseHost(host: string): { name: string; port?: number } | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?$/.exec(host.trim());
  if (!m?.[1]) return undefined;
  const name = m[1].toLowerCase().replace(/^\[|\]$/g, "").replace(/\.$/, "");
  return m[2] !== undefined ? { name, port: Number(m[2]) } : { name };
}

function sameAddress(a: string, b: string): boolean {
  const norm = (x: string): string => (isIP(x) === 6 ? new URL(`http://[${x}]/`).hostname : x);
  return norm(a) === norm(b);
}

/** Exact, or a certificate wildcard `*.example.com` matching exactly one more label. */
function nameMatches(name: string, pattern: string): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, "");
  if (!p.startsWith("*.")) return name === p;
  const rest = name.slice(name.indexOf(".") + 1);
  return name.indexOf(".") > 0 && rest === p.slice(2);
}

/** The DNS names and IP addresses a PEM certificate is valid for (its subjectAltName), lowercased. */
export function certificateNames(certPem: string | Buffer): string[] {
  const san = new X509Certificate(certPem).subjectAltName ?? "";
  return san.split(",").map((s) => s.trim()).flatMap((entry) => {
    const m = /^(DNS|IP Address):(.+)$/.exec(entry);
    return m?.[2] ? [m[2].toLowerCase()] : [];
  });
}
