import { Worker } from "node:worker_threads";
import type { RangeHasher } from "../../storage/index.js";

/**
 * SHA-256 of received segments on a worker thread, so the receiver's event
 * loop only copies bytes while the hash runs beside it (bench/relay.ts: at
 * 4 MiB the hash was the receiving thread's largest cost).
 *
 * Each segment is assembled in a SharedArrayBuffer; the worker reads the
 * ranges it is told about from that same memory (nothing is copied to it),
 * in order, and answers the digest. If the worker fails, every digest it
 * owes rejects (the receiver answers 500 and the sender retries) and the next
 * segment starts a new worker.
 */

/** The worker's code: plain JavaScript, so it runs the same under tsx, vitest and the built package. */
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const jobs = new Map();
parentPort.on("message", (m) => {
  if (m.op === "start") { jobs.set(m.job, { hash: createHash("sha256"), bytes: Buffer.from(m.memory) }); return; }
  const j = jobs.get(m.job);
  if (m.op === "drop" || j === undefined) { jobs.delete(m.job); if (m.op === "digest") parentPort.postMessage({ job: m.job, error: "unknown job" }); return; }
  if (m.op === "update") j.hash.update(j.bytes.subarray(m.from, m.to));
  else if (m.op === "digest") { jobs.delete(m.job); parentPort.postMessage({ job: m.job, digest: j.hash.digest("hex") }); }
});
`;

type Message = { op: "start"; job: number; memory: SharedArrayBuffer } | { op: "update"; job: number; from: number; to: number } | { op: "digest" | "drop"; job: number };

interface Pending {
  resolve: (digest: string) => void;
  reject: (err: Error) => void;
}

/** One live worker and the digests it owes. */
interface Thread {
  worker: Worker;
  pending: Map<number, Pending>;
  dead: boolean;
}

/** A range hasher the receiver can drop when the body is refused (the worker forgets the job). */
export interface SegmentHasher extends RangeHasher {
  drop(): void;
}

export class HashWorker {
  #thread: Thread | undefined;
  #nextJob = 1;
  #closed = false;

  /** A hasher over fresh shared memory of `size` bytes, or undefined (hash on this thread) after close or when no worker can start. */
  open(size: number): SegmentHasher | undefined {
    const t = this.#live();
    if (t === undefined) return undefined;
    const job = this.#nextJob++;
    const memory = new SharedArrayBuffer(size);
    post(t, { op: "start", job, memory });
    let finished = false;
    return {
      buffer: Buffer.from(memory),
      update: (from, to) => post(t, { op: "update", job, from, to }),
      digest: () => {
        finished = true;
        if (t.dead) return Promise.reject(stopped());
        return new Promise<string>((resolve, reject) => {
          t.pending.set(job, { resolve, reject });
          post(t, { op: "digest", job });
        });
      },
      drop: () => {
        if (finished) return;
        finished = true;
        post(t, { op: "drop", job });
      },
    };
  }

  /** Stops the worker; digests still owed reject. */
  async close(): Promise<void> {
    this.#closed = true;
    const t = this.#thread;
    this.#thread = undefined;
    if (t === undefined) return;
    fail(t, new Error("the relay receiver closed while a segment was being hashed"));
    await t.worker.terminate();
  }

  #live(): Thread | undefined {
    if (this.#closed) return undefined;
    if (this.#thread !== undefined && !this.#thread.dead) return this.#thread;
    let worker: Worker;
    try {
      worker = new Worker(WORKER_SOURCE, { eval: true });
    } catch {
      return undefined; // no threads to be had: the assembler hashes on this thread
    }
    worker.unref(); // the receiver's server keeps the process alive, not its hashing thread
    const t: Thread = { worker, pending: new Map(), dead: false };
    worker.on("message", (m: { job: number; digest?: string; error?: string }) => {
      const p = t.pending.get(m.job);
      t.pending.delete(m.job);
      if (m.digest !== undefined) p?.resolve(m.digest);
      else p?.reject(new Error(`the hashing worker lost segment job ${m.job}: ${m.error ?? "no digest"}`));
    });
    worker.on("error", (e) => fail(t, e));
    worker.on("exit", () => fail(t, stopped()));
    this.#thread = t;
    return t;
  }
}

function post(t: Thread, m: Message): void {
  if (!t.dead) t.worker.postMessage(m);
}

function stopped(): Error {
  return new Error("the hashing worker stopped");
}

function fail(t: Thread, err: Error): void {
  t.dead = true;
  for (const p of t.pending.values()) p.reject(err);
  t.pending.clear();
}
