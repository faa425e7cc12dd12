/**
 * The relay transport's throughput rules (bench/relay.ts measures them; these
 * tests pin the behaviour they rely on), over real TLS on loopback:
 *
 * - large bodies are written one after another on a session (SERIAL_BODY_BYTES),
 *   so the receiver stores one while the next arrives, and small ones never
 *   wait behind them; a stuck large body does not hold the others for good.
 * - large bodies are hashed on the receiver's worker thread
 *   (OFF_THREAD_HASH_BYTES): a tampered byte is still refused, a good body is
 *   handed to the sink as a verified buffer, and several at once each get
 *   their own verdict.
 */
import { createHash } from "node:crypto";
import http2 from "node:http2";
import type { ServerHttp2Stream } from "node:http2";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { createPeerTransport, startRelayReceiver } from "../../src/edge/index.js";
import type { RelayPeerTransport, SegmentInfo, SegmentSink , EdgeError} from "../../src/edge/index.js";
import { SERIAL_BODY_BYTES } from "../../src/edge/relay/transport/client.js";
import { OFF_THREAD_HASH_BYTES } from "../../src/edge/relay/transport/receiver.js";
import { verifiedIdOf } from "../../src/edge/storage/verified.js";
import { makeCa } from "../helpers/fleet-certs.js";
import type { TlsIdentity } from "../helpers/fleet-certs.js";
import { needs } from "../helpers/needs.js";

const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");
const seg = (bytes: Uint8Array): SegmentInfo => ({ id: sha(bytes), size: bytes.length, kind: "data" });

/** When each body's first and last bytes arrived (by segment id), at a bare HTTP/2 receiver that acks every body it reads. */
interface Arrival {
  first: number;
  last: number;
}

interface Observer {
  address: string;
  arrivals: Map<string, Arrival>;
  /** Ids whose request headers arrived. */
  opened: Set<string>;
  close(): Promise<void>;
}

/** A bare node:http2 server with the receiver's certificate; bodies whose id is in `stall` are never read. */
async function observer(id: TlsIdentity, stall: Set<string> = new Set()): Promise<Observer> {
  const arrivals = new Map<string, Arrival>();
  const opened = new Set<string>();
  const server = http2.createSecureServer({ ...id, requestCert: true, rejectUnauthorized: true, minVersion: "TLSv1.3" });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("error", () => undefined);
  });
  server.on("stream", (stream: ServerHttp2Stream, headers) => {
    stream.on("error", () => undefined);
    const segId = String(headers[":path"]).split("/").pop() ?? "";
    opened.add(segId);
    if (stall.has(segId)) return;
    stream.on("data", () => {
      const now = performance.now();
      const a = arrivals.get(segId);
      if (a === undefined) arrivals.set(segId, { first: now, last: now });
      else a.last = now;
    });
    stream.on("end", () => {
      stream.respond({ ":status": 200, "content-type": "application/json" });
      stream.end(JSON.stringify({ segment_id: segId, duplicate: false, inbox_seq: 1 }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    address: `127.0.0.1:${port}`,
    arrivals,
    opened,
    close: () => new Promise<void>((r) => {
      server.close(() => r());
      for (const s of sessions) s.destroy();
    }),
  };
}

const openssl = needs("openssl");

openssl.describe("relay transport: how bodies share a session", () => {
  let dir: string;
  let a: TlsIdentity;
  let b: TlsIdentity;
  const cleanups: (() => Promise<void>)[] = [];
  let transport: RelayPeerTransport;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "relay-transport-perf-"));
    const fleet = await makeCa(dir, "fleet-ca");
    [a, b] = await Promise.all([fleet.issue("edge-a"), fleet.issue("edge-b")]);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function start(stall?: Set<string>): Promise<Observer> {
    const o = await observer(b, stall);
    transport = createPeerTransport({ tls: a, dialTimeoutMs: 3000, ackTimeoutMs: 10_000 });
    cleanups.push(() => o.close(), () => transport.close());
    return o;
  }

  it("large bodies pushed at once arrive one after another; a small one pushed with them does not wait behind them", async () => {
    const o = await start();
    const peer = { id: "edge-b", address: o.address };
    const large = Array.from({ length: 4 }, (_, i) => Buffer.alloc(2 * 1024 * 1024, i + 1));
    const small = Buffer.from("small segment");
    await Promise.all([...large.map((s) => transport.push(peer, seg(s), s)), transport.push(peer, seg(small), small)]);
    const spans = large.map((s) => o.arrivals.get(sha(s)) as Arrival).sort((x, y) => x.first - y.first);
    expect(spans).toHaveLength(4);
    // Interleaved DATA frames (HTTP/2's default) would overlap every span.
    for (let i = 1; i < spans.length; i++) expect(spans[i]?.first).toBeGreaterThanOrEqual(spans[i - 1]?.last ?? Infinity);
    // The small body went out at once, before the last large body began to arrive.
    expect(o.arrivals.get(sha(small))?.last).toBeLessThan(spans[3]?.first ?? 0);
  });

  it("a large body that cannot be sent (its stream is never read) holds the next large body only until its push is aborted", async () => {
    const stuck = Buffer.alloc(SERIAL_BODY_BYTES * 4, 7);
    const next = Buffer.alloc(SERIAL_BODY_BYTES * 2, 8);
    const o = await start(new Set([sha(stuck)]));
    const peer = { id: "edge-b", address: o.address };
    const ac = new AbortController();
    const first = transport.push(peer, seg(stuck), stuck, ac.signal);
    const failed = first.catch((e: unknown) => e);
    while (!o.opened.has(sha(stuck))) await new Promise((r) => setTimeout(r, 10));
    const second = transport.push(peer, seg(next), next);
    await new Promise((r) => setTimeout(r, 300));
    expect(o.arrivals.has(sha(next))).toBe(false); // waiting for its turn
    ac.abort(new Error("stop"));
    expect(String(await failed)).toContain("stop");
    await expect(second).resolves.toEqual({ duplicate: false });
  });

  it("a large body hashed on the receiver's worker: a tampered byte is refused with 422 RELAY_DIGEST_MISMATCH and nothing reaches the sink; good ones arrive verified", async () => {
    const stored = new Map<string, Uint8Array>();
    const sink: SegmentSink = {
      accept: (info, bytes) => {
        stored.set(info.id, bytes);
        return Promise.resolve({ duplicate: false, inbox_seq: stored.size });
      },
    };
    const r = await startRelayReceiver({ listen: "127.0.0.1:0", tls: b, peers: [{ id: "edge-a" }], sink, maxSegmentBytes: 8 * 1024 * 1024 });
    transport = createPeerTransport({ tls: a, dialTimeoutMs: 3000, ackTimeoutMs: 10_000 });
    cleanups.push(() => r.close(), () => transport.close());
    const peer = { id: "edge-b", address: r.address };
    const good = Array.from({ length: 5 }, (_, i) => Buffer.alloc(OFF_THREAD_HASH_BYTES * (i + 1) + i, i + 1));
    const tampered = Buffer.from(good[4] as Buffer);
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 1; // the very last byte: hashed after the body ended
    const [refused, ...oks] = await Promise.allSettled([transport.push(peer, seg(good[4] as Buffer), tampered), ...good.map((g) => transport.push(peer, seg(g), g))]);
    expect(refused?.status).toBe("rejected");
    const e = (refused as PromiseRejectedResult).reason as EdgeError;
    expect(e.code).toBe("RELAY_DIGEST_MISMATCH");
    expect(e.details).toMatchObject({ status: 422 });
    expect(oks.map((o) => o.status)).toEqual(good.map(() => "fulfilled"));
    expect(stored.size).toBe(5);
    for (const g of good) {
      const got = stored.get(sha(g));
      expect(got !== undefined && Buffer.from(got).equals(g)).toBe(true);
      expect(verifiedIdOf(got as Uint8Array)).toBe(sha(g)); // the store writes it without a second hash
    }
  });
});
