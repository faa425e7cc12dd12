/**
 * Timed HTTP calls for the latency suites: the clock runs from the request
 * until the whole response body has arrived (what a client waits for); JSON
 * parsing and schema checks happen after it stops, so they are not counted.
 */
export interface Timed<T = unknown> {
  status: number;
  ms: number;
  json: T;
}

export async function timedJson<T = unknown>(base: string, token: string, method: "GET" | "POST", path: string, body?: unknown, signal?: AbortSignal): Promise<Timed<T>> {
  const init: RequestInit = {
    method, headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}), ...(signal ? { signal } : {}),
  };
  const t0 = performance.now();
  const res = await fetch(new URL(path, base), init);
  const text = await res.text();
  const ms = performance.now() - t0;
  return { status: res.status, ms, json: (text === "" ? null : JSON.parse(text)) as T };
}

/** Runs `fn` over `items` with at most `limit` at once, in order of start. */
export async function inParallel<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** One route's server-side duration histogram from /metrics (`cp_http_request_duration_seconds`). */
export interface RouteHistogram {
  /** Cumulative counts by upper bound in seconds (`le`). */
  buckets: Map<number, number>;
  sum: number;
  count: number;
}

/** The server's own timing of `route` (its name in cpapi ROUTES, e.g. createRollout), read from the public /metrics. */
export async function routeHistogram(base: string, route: string, signal?: AbortSignal): Promise<RouteHistogram> {
  const res = await fetch(new URL("/metrics", base), signal ? { signal } : {});
  const text = await res.text();
  const h: RouteHistogram = { buckets: new Map(), sum: 0, count: 0 };
  for (const line of text.split("\n")) {
    const m = /^cp_http_request_duration_seconds_(bucket|sum|count)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m?.[2] || !m[2].includes(`route="${route}"`)) continue;
    const value = Number(m[3]);
    if (m[1] === "sum") h.sum += value;
    else if (m[1] === "count") h.count += value;
    else {
      const le = /le="([^"]+)"/.exec(m[2])?.[1];
      const bound = le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le);
      h.buckets.set(bound, (h.buckets.get(bound) ?? 0) + value);
    }
  }
  return h;
}

/** What happened between two snapshots: count, mean (ms) and how many finished within `withinMs` (a bucket bound). */
export function histogramDelta(before: RouteHistogram, after: RouteHistogram, withinMs: number): { count: number; meanMs: number; within: number } {
  const count = after.count - before.count;
  const le = withinMs / 1000;
  return { count, meanMs: count === 0 ? Number.NaN : ((after.sum - before.sum) / count) * 1000, within: (after.buckets.get(le) ?? 0) - (before.buckets.get(le) ?? 0) };
}
