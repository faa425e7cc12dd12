/**
 * The sending node of bench/relay.ts, in its own process: two nodes are two
 * processes, so the sender's HTTP/2 or TLS work does not share a thread with
 * the receiver's. The parent sends one job at a time over IPC; a job pushes
 * `budget` seconds of unique segments (each batch made and hashed before its
 * clock starts, as the executor reads segments with their ids known) with
 * `concurrency` in flight, and answers with what it timed.
 */
import { createHash, randomBytes } from "node:crypto";
import tls from "node:tls";
import { createPeerTransport } from "../src/edge/index.js";
import type { RelayPeerTransport, SegmentInfo } from "../src/edge/index.js";

export interface SenderJob {
  side: "relay" | "frame";
  /** relay: the receiver's host:port; frame: the TLS server's port. */
  target: string;
  peerId: string;
  size: number;
  batch: number;
  budget: number;
  concurrency: number;
  counter: number;
  tls: { cert: string; key: string; ca: string };
}

export interface SenderResult {
  segments: number;
  bytes: number;
  seconds: number;
  lat: number[];
  counter: number;
}

interface Segment {
  info: SegmentInfo;
  bytes: Buffer;
}

const base = randomBytes(4 * 1024 * 1024);
let transport: RelayPeerTransport | undefined;

/** `count` unique segments of `size` bytes: the random base with a counter in front, hashed up front. */
function makeBatch(size: number, count: number, start: number): Segment[] {
  return Array.from({ length: count }, (_, i) => {
    const bytes = Buffer.from(base.subarray(0, size));
    bytes.writeUInt32BE((start + i) >>> 0, 0);
    bytes.writeUInt32BE(Math.floor((start + i) / 2 ** 32), 4);
    return { info: { id: createHash("sha256").update(bytes).digest("hex"), size, kind: "data" as const }, bytes };
  });
}

/** Closed loop: `concurrency` pushes in flight until the batch is done; only this is timed. */
async function runBatch(batch: Segment[], send: (s: Segment) => Promise<void>, lat: number[], concurrency: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < batch.length) {
      const s = batch[next++] as Segment;
      const t = performance.now();
      await send(s);
      lat.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return (performance.now() - t0) / 1000;
}

/** One TLS client socket of [u32 len][bytes] frames; `send` resolves when the server acked that frame. */
async function frameClient(port: number, id: SenderJob["tls"]): Promise<{ send: (s: Segment) => Promise<void>; close: () => void }> {
  const sock = tls.connect({ host: "127.0.0.1", port, cert: id.cert, key: id.key, ca: id.ca, servername: "edge-b", minVersion: "TLSv1.3" });
  sock.setNoDelay(true);
  await new Promise<void>((res, rej) => {
    sock.once("secureConnect", () => res());
    sock.once("error", rej);
  });
  const waiting = new Map<number, () => void>();
  let seq = 0;
  let buf = Buffer.alloc(0);
  sock.on("data", (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    while (buf.length >= 4) {
      const n = buf.readUInt32BE(0);
      buf = buf.subarray(4);
      waiting.get(n)?.();
      waiting.delete(n);
    }
  });
  return {
    send: (s) => new Promise<void>((resolve) => {
      const head = Buffer.alloc(4);
      head.writeUInt32BE(s.bytes.length, 0);
      waiting.set(seq++, resolve);
      sock.cork();
      sock.write(head);
      sock.write(s.bytes);
      sock.uncork();
    }),
    close: () => sock.destroy(),
  };
}

async function run(job: SenderJob): Promise<SenderResult> {
  let send: (s: Segment) => Promise<void>;
  let close = (): void => undefined;
  if (job.side === "relay") {
    transport ??= createPeerTransport({ tls: job.tls, dialTimeoutMs: 5000, ackTimeoutMs: 120_000 });
    const t = transport;
    const peer = { id: job.peerId, address: job.target };
    send = async (s) => {
      const r = await t.push(peer, s.info, s.bytes);
      if (r.duplicate && job.peerId === "edge-b") throw new Error("a unique segment came back as a duplicate: the bench would not measure storing");
    };
  } else {
    const c = await frameClient(Number(job.target), job.tls);
    send = c.send;
    close = c.close;
  }
  let counter = job.counter;
  // Warm-up (session, TLS, JIT): one small batch, not counted.
  await runBatch(makeBatch(job.size, Math.min(job.batch, job.concurrency * 2), counter), send, [], job.concurrency);
  counter += job.batch;
  const out: SenderResult = { segments: 0, bytes: 0, seconds: 0, lat: [], counter };
  while (out.seconds < job.budget) {
    const batch = makeBatch(job.size, job.batch, counter);
    counter += job.batch;
    out.seconds += await runBatch(batch, send, out.lat, job.concurrency);
    out.segments += batch.length;
    out.bytes += batch.length * job.size;
  }
  close();
  out.counter = counter;
  return out;
}

process.on("message", (job: SenderJob | "exit") => {
  if (job === "exit") {
    void (transport?.close() ?? Promise.resolve()).then(() => process.exit(0));
    return;
  }
  run(job).then(
    (r) => process.send?.({ ok: r }),
    (e: unknown) => process.send?.({ error: e instanceof Error ? e.message : String(e) }),
  );
});
process.send?.("ready");
