import { CpClientError } from "../cpapi/index.js";

/** Latency samples kept per route at most (reservoir sampling beyond): memory stays bounded on long runs. */
const MAX_SAMPLES = 200_000;

export interface RouteStats {
  count: number;
  errors: number;
  p50_ms: number | null;
  p99_ms: number | null;
}

/** Nearest-rank percentile of sorted samples (null when there are none). */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return Math.round((sorted[i] as number) * 100) / 100;
}

/**
 * Every request the fleet makes goes through {@link Traffic.call}: at most
 * `maxInflight` at once (the bound on sockets: fetch keeps one connection per
 * request in flight), timed, counted per route, and its failure classified
 * by code — `CP_REQUEST_FAILED` (no answer) and `CP_RESPONSE_INVALID`
 * (off contract) are transport errors; refusals count as
 * `CP_REQUEST_REJECTED/<server code>`.
 */
export class Traffic {
  readonly #max: number;
  #inflight = 0;
  readonly #waiting: (() => void)[] = [];
  readonly #samples = new Map<string, number[]>();
  readonly #seen = new Map<string, { count: number; errors: number }>();
  readonly errors = new Map<string, number>();
  total = 0;
  transportErrors = 0;
  peakInflight = 0;

  constructor(maxInflight: number) {
    this.#max = maxInflight;
  }

  async call<T>(route: string, fn: () => Promise<T>): Promise<T> {
    await this.#acquire();
    const t0 = performance.now();
    try {
      return await fn();
    } catch (e) {
      this.#failed(route, e);
      throw e;
    } finally {
      this.#record(route, performance.now() - t0);
      this.#release();
    }
  }

  summary(): { total: number; transport_errors: number; peak_inflight: number; p50_ms: number | null; p99_ms: number | null; by_route: Record<string, RouteStats> } {
    const all: number[] = [];
    const by_route: Record<string, RouteStats> = {};
    for (const [route, s] of [...this.#seen.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      const samples = [...(this.#samples.get(route) ?? [])].sort((a, b) => a - b);
      for (const x of samples) all.push(x);
      by_route[route] = { count: s.count, errors: s.errors, p50_ms: percentile(samples, 50), p99_ms: percentile(samples, 99) };
    }
    all.sort((a, b) => a - b);
    return { total: this.total, transport_errors: this.transportErrors, peak_inflight: this.peakInflight, p50_ms: percentile(all, 50), p99_ms: percentile(all, 99), by_route };
  }

  #failed(route: string, e: unknown): void {
    const code = errorKey(e);
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
    if (code === "CP_REQUEST_FAILED" || code === "CP_RESPONSE_INVALID" || code === "INTERNAL") this.transportErrors += 1;
    const s = this.#seen.get(route);
    if (s) s.errors += 1;
    else this.#seen.set(route, { count: 0, errors: 1 });
  }

  #record(route: string, ms: number): void {
    this.total += 1;
    const s = this.#seen.get(route) ?? { count: 0, errors: 0 };
    s.count += 1;
    this.#seen.set(route, s);
    const samples = this.#samples.get(route) ?? [];
    if (samples.length < MAX_SAMPLES) samples.push(ms);
    else {
      // Reservoir sampling keeps a uniform sample of every request on the route.
      const j = Math.floor(Math.random() * s.count);
      if (j < MAX_SAMPLES) samples[j] = ms;
    }
    this.#samples.set(route, samples);
  }

  async #acquire(): Promise<void> {
    // A released slot is handed to the next waiter directly, so a newcomer cannot slip past the bound.
    if (this.#inflight < this.#max) this.#inflight += 1;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.peakInflight = Math.max(this.peakInflight, this.#inflight);
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#inflight -= 1;
  }
}

/** `CP_REQUEST_REJECTED/<problem code>` for refusals, the client's code otherwise. */
export function errorKey(e: unknown): string {
  if (e instanceof CpClientError) return e.code === "CP_REQUEST_REJECTED" ? `${e.code}/${e.problemCode ?? e.status ?? "?"}` : e.code;
  return e instanceof Error && "code" in e && typeof e.code === "string" ? e.code : "INTERNAL";
}
