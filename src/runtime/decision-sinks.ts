import { closeSync, openSync, writeSync } from "node:fs";
import type { DecisionEvent, DecisionSink } from "./types.js";

/**
 * Keeps the most recent decision events in memory (a bounded ring): for tests
 * and for status output. Recording never allocates beyond `capacity` events.
 *
 * ### Examples
 * ```ts
 * import { Interceptor, MemorySink } from "./index.js";
 * const sink = new MemorySink(100);
 * const gate = new Interceptor({ policy, principal, node: {}, sink });
 * await gate.call({ kind: "tool.echo", params: { text: "hi" } }, echo, "direct");
 * sink.events(); // [{ type: "ai.policy.decision", tool: "tool.echo", decision: "allow", … }]
 * ```
 */
export class MemorySink implements DecisionSink {
  readonly capacity: number;
  readonly #ring: (DecisionEvent | undefined)[];
  #next = 0;
  #total = 0;

  constructor(capacity = 1000) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`MemorySink capacity must be a positive integer, got ${capacity}`);
    this.capacity = capacity;
    this.#ring = new Array<DecisionEvent | undefined>(capacity);
  }

  record(event: DecisionEvent): void {
    this.#ring[this.#next] = event;
    this.#next = (this.#next + 1) % this.capacity;
    this.#total++;
  }

  /** The events held, oldest first. */
  events(): DecisionEvent[] {
    const out: DecisionEvent[] = [];
    const held = Math.min(this.#total, this.capacity);
    const first = this.#total > this.capacity ? this.#next : 0;
    for (let i = 0; i < held; i++) {
      const e = this.#ring[(first + i) % this.capacity];
      if (e) out.push(e);
    }
    return out;
  }

  /** Events recorded since construction or the last clear, including those the ring has dropped. */
  get total(): number {
    return this.#total;
  }

  clear(): void {
    this.#ring.fill(undefined);
    this.#next = 0;
    this.#total = 0;
  }
}

/**
 * Appends each decision event as one JSON line to a file (opened for append
 * once; each line is written synchronously before `record` returns, so lines
 * from one process never interleave). Not durable: no fsync, no recovery. It is a
 * stand-in until the telemetry WAL (seed 001) exists and takes decision
 * events with its crash-safety guarantees.
 *
 * ### Examples
 * ```ts
 * import { JsonlSink } from "./index.js";
 * const sink = new JsonlSink("/var/lib/autonomy/decisions.jsonl");
 * // … new Interceptor({ …, sink }) …
 * sink.close();
 * ```
 */
export class JsonlSink implements DecisionSink {
  readonly path: string;
  #fd: number | undefined;

  constructor(path: string) {
    this.path = path;
    this.#fd = openSync(path, "a", 0o640);
  }

  record(event: DecisionEvent): void {
    if (this.#fd === undefined) throw new Error(`decision log ${this.path} is closed`);
    const line = Buffer.from(`${JSON.stringify(event)}\n`, "utf8");
    let off = 0;
    while (off < line.length) off += writeSync(this.#fd, line, off, line.length - off);
  }

  /** Closes the file; later records throw (the interceptor counts them as sink failures). */
  close(): void {
    if (this.#fd === undefined) return;
    closeSync(this.#fd);
    this.#fd = undefined;
  }
}
