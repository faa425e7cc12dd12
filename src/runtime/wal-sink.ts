import type { DecisionEvent, DecisionSink, ToolResultEvent } from "./types.js";

/**
 * How decision events reach the WAL:
 *   - "durable" (default): `record` returns the append, so the interceptor
 *     waits until the event is durable (one group commit, ~1 ms) before the
 *     tool runs or the answer goes out, and an allow whose event cannot be
 *     written becomes a deny. Every answered call has its event on disk.
 *   - "async": the append starts and the call goes on; a crash can lose the
 *     events of calls still in flight (never an acknowledged one), and a WAL
 *     failure is only counted.
 */
export type DecisionLogMode = "durable" | "async";

/** What the sink needs of a WAL (a Wal, or the runtime's self-reopening LiveWal). */
export interface WalAppender {
  append(event: Record<string, unknown>): Promise<number>;
}

/**
 * Decision events into the telemetry WAL, and with `toolResults` the
 * `ai.tool.result` of every allowed call (appended without waiting: the
 * answer never waits on them; the runtime turns them on so the control
 * plane can compute tool error rates). Failures are counted and remembered
 * for status output.
 */
export class WalDecisionSink implements DecisionSink {
  readonly #wal: WalAppender;
  readonly #mode: DecisionLogMode;
  readonly #pending = new Set<Promise<unknown>>();
  failures = 0;
  lastError: unknown;
  readonly recordResult: ((event: ToolResultEvent) => void) | undefined;

  readonly #stamp: (() => Record<string, unknown> | undefined) | undefined;

  /**
   * `stamp`: fields added to every decision and tool result when it is recorded (the
   * runtime adds the control plane's `release_id` and `lock_fingerprint` of what the node
   * runs, so the control plane counts them per release).
   */
  constructor(wal: WalAppender, mode: DecisionLogMode = "durable", opts: { toolResults?: boolean; stamp?: () => Record<string, unknown> | undefined } = {}) {
    this.#wal = wal;
    this.#mode = mode;
    this.#stamp = opts.stamp;
    this.recordResult = opts.toolResults ? (event) => void this.#append({ ...event, ...this.#stamped() }).catch(() => undefined) : undefined;
  }

  #stamped(): Record<string, unknown> {
    try {
      return this.#stamp?.() ?? {};
    } catch {
      return {};
    }
  }

  record(event: DecisionEvent): Promise<void> | undefined {
    const append = this.#append({ ...event, ...this.#stamped() });
    return this.#mode === "durable" ? append : undefined;
  }

  /** One append, counted on failure and tracked until settled (flush waits for it). */
  #append(event: Record<string, unknown>): Promise<void> {
    const append = this.#wal.append(event).then(
      () => undefined,
      (e: unknown) => {
        this.failures += 1;
        this.lastError = e;
        throw e;
      },
    );
    const settled = append.catch(() => undefined);
    this.#pending.add(settled);
    void settled.finally(() => this.#pending.delete(settled));
    return append;
  }

  /** Waits until every recorded event is durable (or failed). */
  async flush(): Promise<void> {
    await Promise.all([...this.#pending]);
  }
}
