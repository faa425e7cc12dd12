import { request } from "node:https";
import type { IncomingHttpHeaders } from "node:http";
import { Readable } from "node:stream";

/**
 * One HTTPS request trusting `ca` (PEM: a private CA) in addition to nothing
 * else, as a fetch `Response`, for a control plane whose certificate a public
 * CA did not issue (`--server-ca FILE`). Node 20's fetch takes no CA option
 * without the undici package, so this path uses node:https; like the fetch
 * path it follows no redirect and honours the caller's signal (the deadline).
 */
export function fetchWithCa(url: URL, init: { method: string; headers: Record<string, string>; body: string | null; signal: AbortSignal }, ca: string): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method, headers: init.headers, ca, signal: init.signal }, (res) => {
      const status = res.statusCode ?? 0;
      // A Response for these statuses may carry no body (fetch's rule); drain it.
      const nullBody = status === 204 || status === 205 || status === 304;
      if (nullBody) res.resume();
      resolve(new Response(nullBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, headers: headersOf(res.headers) }));
    });
    req.on("error", (e) => reject(new TypeError("fetch failed", { cause: e })));
    req.end(init.body ?? undefined);
  });
}

function headersOf(h: IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) out.append(k, one);
  }
  return out;
}
