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
