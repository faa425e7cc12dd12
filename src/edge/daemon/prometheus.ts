import { createServer } from "node:http";
import type { Server } from "node:http";
import { isIP } from "node:net";
import type { Registry } from "prom-client";
import { EdgeError } from "../errors.js";

/** Where `--prometheus-addr` binds, parsed once (the CLI and the daemon share it). */
export interface MetricsAddress {
  /** An IP literal (IPv6 without brackets). */
  host: string;
  port: number;
  /** False when anyone on the network could scrape it (the endpoint has no authentication). */
  loopback: boolean;
}

/** Bounds of the scrape endpoint: a scraper sends one small GET; anything slower or bigger is not one. */
const REQUEST_TIMEOUT_MS = 10_000;
const MAX_CONNECTIONS = 16;

/**
 * Parses `--prometheus-addr`. The metrics endpoint has no authentication, so
 * the default is loopback: a bare port (`9464` or `:9464`) binds 127.0.0.1.
 * Any other interface must be written out as an IP literal (`0.0.0.0:9464`,
 * `10.0.0.5:9464`, `[::]:9464`), and then `loopback` is false (edged logs a
 * warning at start). `localhost` means 127.0.0.1. A host name is refused: which
 * interface it exposes would depend on name resolution at start. The empty
 * string is "off" (undefined), as in the original. Anything else that does not
 * parse is EDGE_CONFIG_INVALID.
 */
export function parseMetricsAddress(addr: string): MetricsAddress | undefined {
  if (addr === "") return undefined;
  const bad = (why: string): EdgeError =>
    new EdgeError("EDGE_CONFIG_INVALID", `--prometheus-addr ${JSON.stringify(addr)}: ${why}`, { hint: "pass PORT or :PORT (loopback, 127.0.0.1), or IP:PORT / [IPv6]:PORT for another interface, e.g. 127.0.0.1:9464" });
  const bare = /^:?([0-9]+)$/.exec(addr);
  const m = bare ? undefined : /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]+)$/.exec(addr);
  if (!bare && !m) throw bad("expected PORT, :PORT, IP:PORT or [IPv6]:PORT");
  const portText = bare ? bare[1] : m?.[3];
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535 || (portText ?? "").length > 5) throw bad("the port must be 0-65535");
  if (bare) return { host: "127.0.0.1", port, loopback: true };
  const v6 = m?.[1];
  const host = v6 ?? (m?.[2] === "localhost" ? "127.0.0.1" : m?.[2] ?? "");
  const family = isIP(host);
  if (v6 !== undefined ? family !== 6 : family !== 4) {
    throw bad(v6 !== undefined ? "not an IPv6 address" : "the host must be an IPv4 address, [IPv6] or localhost (a host name is not bound: the interface it exposes would depend on name resolution)");
  }
  return { host, port, loopback: isLoopback(host) };
}

/** 127.0.0.0/8, ::1, and IPv4-mapped loopback (::ffff:127.x, in whichever spelling). */
export function isLoopback(ip: string): boolean {
  if (isIP(ip) === 4) return ip.startsWith("127.");
  // The URL parser writes an IPv6 address in its canonical form ("0:0::1" → "::1", "::ffff:127.0.0.1" → "::ffff:7f00:1").
  const canonical = new URL(`http://[${ip}]/`).hostname;
  return canonical === "[::1]" || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(canonical);
}

/**
 * Serves `GET /metrics` (only) at the parsed address; returns the bound
 * address and the close function. The metrics carry no secrets (peer ids,
 * states and counts; never key material or paths: docs/edge.md), but anyone
 * who can reach the address can read them, hence the loopback default.
 */
export async function serveMetrics(registry: Registry, at: MetricsAddress): Promise<{ address: string; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found; scrape /metrics\n");
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { "content-type": registry.contentType }).end(body),
      () => res.writeHead(500, { "content-type": "text/plain" }).end("metrics collection failed\n"),
    );
  });
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.headersTimeout = REQUEST_TIMEOUT_MS;
  server.maxConnections = MAX_CONNECTIONS;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(at.port, at.host, () => resolve());
  });
  const a = server.address();
  const bound = typeof a === "object" && a !== null ? `${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}` : `${at.host}:${at.port}`;
  return {
    address: bound,
    close: () => new Promise<void>((res) => {
      server.close(() => res());
      server.closeAllConnections();
    }),
  };
}
