import type { Wal } from "../telemetry/index.js";
import type { DecisionEvent, DecisionSink } from "./types.js";

/**
 * Decision events into the telemetry WAL. The interceptor's sink is
 * synchronous (a decision must not wait on a disk), so the append is started
 * here and becomes durable with the next group commit, ~1 ms later; a crash in
 * that window can lose the events of calls still in flight, never an
 * acknowledged one. Failures are counted, never thrown into the call path.
 */
export class WalDecisionSink implements DecisionSink {
  readonly #wal: Wal;
  readonly #pending = new Set<Promise<unknown>>();
  failures = 0;
  lastError: unknown;

  constructor(wal: Wal) {
    this.#wal = wal;
  }

  record(event: DecisionEvent): void {
    const p = this.#wal.append({ ...event }).catch((e: unknown) => {
      this.failures += 1;
      this.lastError = e;
    });
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  /** Waits until every recorded event is durable (or failed). */
  async flush(): Promise<void> {
    await Promise.all([...this.#pending]);
  }
}
