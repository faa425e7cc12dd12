/**
 * The relay transport over real TLS on loopback (no mocks of TLS or HTTP/2):
 * certificates made by the openssl CLI (test/helpers/fleet-certs.ts), the
 * receiver from startRelayReceiver, the client from createPeerTransport. The
 * sink is a test double (MemorySinkDouble) — the durable sink is the ledger's.
 */
import { createHash } from "node:crypto";
import http2 from "node:http2";
import { createServer } from "node:net";
import type { AddressInfo, Server, Socket } from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { EdgeError, createPeerTransport, startRelayReceiver } from "../../src/edge/index.js";
import type { PeerIdentity, RelayPeerTransport, RelayReceiver, SegmentInfo, SegmentSink } from "../../src/edge/index.js";
import { freeLoopbackPort } from "../../src/lib/index.js";
import { initCa, issueCert, readTlsIdentity } from "../../src/pki/index.js";
import { makeCa, opensslTime } from "../helpers/fleet-certs.js";
import type { TestCa, TlsIdentity } from "../helpers/fleet-certs.js";
import { needs } from "../helpers/needs.js";

/** A SegmentSink test double: keeps segments in memory, optionally slow or failing. */
class MemorySinkDouble implements SegmentSink {
  readonly stored = new Map<string, { info: SegmentInfo; bytes: Uint8Array; from: PeerIdentity }>();
  delayMs = 0;
  failWith: Error | undefined;
  #seq = 0;
  async accept(info: SegmentInfo, bytes: Uint8Array, from: PeerIdentity): Promise<{ duplicate: boolean; inbox_seq: number }> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.failWith) throw this.failWith;
    if (this.stored.has(info.id)) return { duplicate: true, inbox_seq: 0 };
    this.stored.set(info.id, { info, bytes, from });
    return { duplicate: false, inbox_seq: ++this.#seq };
  }
}

const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");
const seg = (bytes: Uint8Array, kind: SegmentInfo["kind"] = "data"): SegmentInfo => ({ id: sha(bytes), size: bytes.length, kind });

async function failure(p: Promise<unknown>): Promise<EdgeError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof EdgeError) return e;
    throw e;
  }
  throw new Error("expected the push to fail");
}

interface Raw {
  status: number;
  body: Record<string, unknown>;
}

/** One request by a bare node:http2 client (to send what our client never would). */
function rawRequest(address: string, id: TlsIdentity | { ca: Buffer }, headers: http2.OutgoingHttpHeaders, body?: Uint8Array | ((s: http2.ClientHttp2Stream) => void)): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`https://${address}`, { ...id, servername: "edge-b", minVersion: "TLSv1.3" });
    s.on("error", reject);
    const req = s.request(headers);
    const chunks: Buffer[] = [];
    let status = 0;
    req.on("response", (h) => { status = Number(h[":status"]); });
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      s.close();
      const text = Buffer.concat(chunks).toString();
      resolve({ status, body: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>) });
    });
    req.on("error", (e: Error) => { s.destroy(); reject(e); });
    if (typeof body === "function") body(req);
    else req.end(body);
  });
}

const openssl = needs("openssl");

openssl.describe("relay transport (HTTP/2, mutual TLS, loopback)", () => {
  let dir: string;
  let fleet: TestCa;
  let other: TestCa;
  let a: TlsIdentity; // the sender, edge-a
  let b: TlsIdentity; // the receiver, edge-b
  const receivers: RelayReceiver[] = [];
  const transports: RelayPeerTransport[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "relay-transport-"));
    [fleet, other] = await Promise.all([makeCa(dir, "fleet-ca"), makeCa(dir, "other-ca")]);
    [a, b] = await Promise.all([fleet.issue("edge-a"), fleet.issue("edge-b")]);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await Promise.all(transports.splice(0).map((t) => t.close()));
    await Promise.all(receivers.splice(0).map((r) => r.close()));
  });

  async function receiver(sink: SegmentSink, opts: { identity?: TlsIdentity; max?: number; listen?: string } = {}): Promise<RelayReceiver> {
    const r = await startRelayReceiver({
      listen: opts.listen ?? "127.0.0.1:0", tls: opts.identity ?? b, peers: [{ id: "edge-a" }], sink, maxSegmentBytes: opts.max ?? 1024 * 1024,
    });
    receivers.push(r);
    return r;
  }
  function transport(identity: TlsIdentity = a, timeouts: { dial?: number; ack?: number } = {}): RelayPeerTransport {
    const t = createPeerTransport({ tls: identity, dialTimeoutMs: timeouts.dial ?? 3000, ackTimeoutMs: timeouts.ack ?? 5000 });
    transports.push(t);
    return t;
  }

  it("delivers a segment with the sender's verified identity; a second push of it is a duplicate", async () => {
    const sink = new MemorySinkDouble();
    const r = await receiver(sink);
    const t = transport();
    const bytes = Buffer.from("hello, edge-b");
    await expect(t.push({ id: "edge-b", address: r.address }, seg(bytes), bytes)).resolves.toEqual({ duplicate: false });
    const got = sink.stored.get(sha(bytes));
    expect(Buffer.from(got?.bytes ?? []).toString()).toBe("hello, edge-b");
    expect(got?.info).toEqual({ id: sha(bytes), size: bytes.length, kind: "data" });
    const fp = `sha256:${createHash("sha256").update(new (await import("node:crypto")).X509Certificate(a.cert).raw).digest("hex")}`;
    expect(got?.from).toEqual({ id: "edge-a", cert_fingerprint: fp });
    await expect(t.push({ id: "edge-b", address: r.address }, seg(bytes), bytes)).resolves.toEqual({ duplicate: true });
    expect(r.refused()).toEqual([]);
  });

  it("certificates from src/pki (autonomy cert ca init / issue) work end to end, and a second pki CA's are refused", async () => {
    const own = join(dir, "pki-fleet");
    const foreign = join(dir, "pki-other");
    await initCa({ outDir: own });
    await initCa({ outDir: foreign });
    const identity = async (caDir: string, name: string): Promise<TlsIdentity> => {
      const w = await issueCert({ caDir, name, outDir: join(caDir, "issued") });
      return readTlsIdentity({ certFile: w.certFile, keyFile: w.keyFile, caFile: join(caDir, "ca.crt") });
    };
    const sink = new MemorySinkDouble();
    const r = await receiver(sink, { identity: await identity(own, "edge-b") });
    const bytes = Buffer.from("issued by our own pki");
    await expect(transport(await identity(own, "edge-a")).push({ id: "edge-b", address: r.address }, seg(bytes), bytes)).resolves.toEqual({ duplicate: false });
    const stranger = await identity(foreign, "edge-a");
    const e = await failure(transport({ ...stranger, ca: (await identity(own, "edge-x")).ca }).push({ id: "edge-b", address: r.address }, seg(bytes), bytes));
    expect(e.code).toBe("RELAY_TLS_REFUSED");
    expect(r.refused()).toMatchObject([{ direction: "inbound", reason: "UNKNOWN_CA" }]);
  });

  it("trust: a peer with a certificate from another CA is refused and recorded", async () => {
    const sink = new MemorySinkDouble();
    const r = await receiver(sink);
    const stranger = await other.issue("edge-a"); // the right name, the wrong CA
    const t = transport({ ...stranger, ca: fleet.cert }); // it trusts our server; we do not trust it
    const bytes = Buffer.from("from a stranger");
    const e = await failure(t.push({ id: "edge-b", address: r.address }, seg(bytes), bytes));
    expect(e.code).toBe("RELAY_TLS_REFUSED");
    expect(e.details.retryable).toBe(true);
    expect(sink.stored.size).toBe(0);
    expect(r.refused()).toMatchObject([{ direction: "inbound", peer: "127.0.0.1", reason: "UNKNOWN_CA", count: 1 }]);
    expect(t.refused()).toMatchObject([{ direction: "outbound", peer: "edge-b", reason: "TLS_ERROR" }]);
    // The other direction: our client refuses a server whose certificate another CA issued.
    const impostor = await receiver(new MemorySinkDouble(), { identity: await other.issue("edge-b") });
    const ours = transport();
    const e2 = await failure(ours.push({ id: "edge-b", address: impostor.address }, seg(bytes), bytes));
    expect(e2.code).toBe("RELAY_TLS_REFUSED");
    expect(ours.refused()).toMatchObject([{ direction: "outbound", peer: "edge-b", reason: "UNKNOWN_CA", count: 1 }]);
  });

  it("trust: a peer with an expired certificate is refused and recorded", async () => {
    const sink = new MemorySinkDouble();
    const r = await receiver(sink);
    const expired = await fleet.issue("edge-a", { notBefore: "20200101000000Z", notAfter: "20200201000000Z" });
    const t = transport(expired);
    const bytes = Buffer.from("expired sender");
    expect((await failure(t.push({ id: "edge-b", address: r.address }, seg(bytes), bytes))).code).toBe("RELAY_TLS_REFUSED");
    await failure(t.push({ id: "edge-b", address: r.address }, seg(bytes), bytes));
    expect(sink.stored.size).toBe(0);
    expect(r.refused()).toMatchObject([{ direction: "inbound", reason: "CERT_EXPIRED", count: 2 }]);
    // Our client refuses a receiver with an expired certificate.
    const stale = await receiver(new MemorySinkDouble(), { identity: await fleet.issue("edge-b", { notBefore: "20200101000000Z", notAfter: "20200201000000Z" }) });
    const ours = transport();
    expect((await failure(ours.push({ id: "edge-b", address: stale.address }, seg(bytes), bytes))).code).toBe("RELAY_TLS_REFUSED");
    expect(ours.refused()).toMatchObject([{ direction: "outbound", peer: "edge-b", reason: "CERT_EXPIRED" }]);
  });

  it("trust: a peer with a certificate that is not valid yet is refused and recorded", async () => {
    const sink = new MemorySinkDouble();
    const r = await receiver(sink);
    const early = await fleet.issue("edge-a", { notBefore: opensslTime(Date.now() + 5 * 86400_000), notAfter: opensslTime(Date.now() + 50 * 86400_000) });
    const bytes = Buffer.from("too early");
    expect((await failure(transport(early).push({ id: "edge-b", address: r.address }, seg(bytes), bytes))).code).toBe("RELAY_TLS_REFUSED");
    expect(r.refused()).toMatchObject([{ direction: "inbound", reason: "CERT_NOT_YET_VALID" }]);
  });

  it("trust: a peer with no certificate is refused and recorded", async () => {
    const sink = new MemorySinkDouble();
    const r = await receiver(sink);
    const bytes = Buffer.from("anonymous");
    await expect(rawRequest(r.address, { ca: fleet.cert }, { ":method": "PUT", ":path": `/v1/segments/${sha(bytes)}`, "x-autonomy-segment-kind": "data" }, bytes)).rejects.toMatchObject({ code: "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED" });
    expect(sink.stored.size).toBe(0);
    expect(r.refused()).toMatchObject([{ direction: "inbound", reason: "NO_CERTIFICATE", count: 1 }]);
  });

  it("trust: our client refuses a fleet certificate issued to another name than the peer id", async () => {
    const r = await receiver(new MemorySinkDouble(), { identity: await fleet.issue("edge-c") });
    const t = transport();
    const bytes = Buffer.from("for edge-b only");
    const e = await failure(t.push({ id: "edge-b", address: r.address }, seg(bytes), bytes));
    expect(e.code).toBe("RELAY_TLS_REFUSED");
    expect(e.message).toContain("edge-c");
    expect(t.refused()).toMatchObject([{ direction: "outbound", peer: "edge-b", reason: "NAME_MISMATCH" }]);
  });

  it("a fleet certificate of a node that is not a configured peer gets 403 UNKNOWN_PEER, recorded on both sides", async () => {
    const sink = new MemorySinkDouble();
    const r = await receiver(sink);
    const t = transport(await fleet.issue("edge-z"));
    const bytes = Buffer.from("from an unlisted node");
    const e = await failure(t.push({ id: "edge-b", address: r.address }, seg(bytes), bytes));
    expect(e.code).toBe("RELAY_PEER_REJECTED");
    expect(e.details).toMatchObject({ retryable: true, status: 403, peer_code: "UNKNOWN_PEER" });
    expect(sink.stored.size).toBe(0);
    expect(r.refused()).toMatchObject([{ direction: "inbound", reason: "UNKNOWN_PEER" }]);
    expect(r.refused()[0]?.detail).toContain("edge-z");
    expect(t.refused()).toMatchObject([{ direction: "outbound", peer: "edge-b", reason: "UNKNOWN_PEER" }]);
  });

  it("a tampered byte in transit (a body that does not match its id) is refused with RELAY_DIGEST_MISMATCH and nothing is stored", async () => {
    const sink = new MemorySinkDouble();
    const r = await receiver(sink);
    const bytes = Buffer.from("the original segment");
    const tampered = Buffer.from(bytes);
    tampered[4] = (tampered[4] ?? 0) ^ 1;
    const e = await failure(transport().push({ id: "edge-b", address: r.address }, seg(bytes), tampered));
    expect(e.code).toBe("RELAY_DIGEST_MISMATCH");
    expect(e.details).toMatchObject({ retryable: true, status: 422 });
    expect(sink.stored.size).toBe(0);
  });

  it("an oversized segment is refused with 413 SEGMENT_TOO_LARGE before or while reading, and nothing is stored", async () => {
    const sink = new MemorySinkDouble();
    const r = await receiver(sink, { max: 1024 });
    const big = Buffer.alloc(4096, 7);
    const e = await failure(transport().push({ id: "edge-b", address: r.address }, seg(big), big));
    expect(e.code).toBe("RELAY_PEER_REJECTED");
    expect(e.details).toMatchObject({ retryable: false, status: 413, peer_code: "SEGMENT_TOO_LARGE" });
    // No content-length: the body runs over the cap while streaming.
    const streamed = await rawRequest(r.address, a, { ":method": "PUT", ":path": `/v1/segments/${sha(big)}`, "x-autonomy-segment-kind": "data" }, (s) => {
      for (let i = 0; i < 4; i++) s.write(big.subarray(i * 1024, (i + 1) * 1024));
      s.end();
    });
    expect(streamed).toMatchObject({ status: 413, body: { code: "SEGMENT_TOO_LARGE" } });
    // A declared length over the cap is answered before any body byte is sent (the body never comes).
    const early = rawRequest(r.address, a, { ":method": "PUT", ":path": `/v1/segments/${sha(big)}`, "x-autonomy-segment-kind": "data", "content-length": String(10 * 1024 ** 3) }, () => undefined);
    const waited = new Promise((res) => setTimeout(() => res("no answer without the body"), 2000));
    expect(await Promise.race([early, waited])).toMatchObject({ status: 413, body: { code: "SEGMENT_TOO_LARGE" } });
    // At the cap exactly is fine.
    const fits = Buffer.alloc(1024, 9);
    await expect(transport().push({ id: "edge-b", address: r.address }, seg(fits), fits)).resolves.toEqual({ duplicate: false });
    expect([...sink.stored.keys()]).toEqual([sha(fits)]);
  });

  it("bad segment ids and paths (traversal included) are refused before a byte is read, and nothing is stored", async () => {
    const sink = new MemorySinkDouble();
    const r = await receiver(sink);
    const bytes = Buffer.from("x");
    const id = sha(bytes);
    const put = (path: string, extra: http2.OutgoingHttpHeaders = {}): Promise<Raw> =>
      rawRequest(r.address, a, { ":method": "PUT", ":path": path, "x-autonomy-segment-kind": "data", ...extra }, bytes);
    for (const path of ["/v1/segments/../../etc/passwd", "/v1/segments/%2e%2e%2f%2e%2e%2fetc%2fpasswd", `/v1/segments/${id.toUpperCase()}`, `/v1/segments/${id.slice(1)}`, `/v1/segments/${id}/x`, `/v1/segments/${id}?x=1`, "/v1/segments/"]) {
      expect(await put(path), path).toMatchObject({ status: 400, body: { code: "REQUEST_INVALID" } });
    }
    expect(await put(`/v1/segment/${id}`)).toMatchObject({ status: 404, body: { code: "NOT_FOUND" } });
    expect(await put(`/../v1/segments/${id}`)).toMatchObject({ status: 404 });
    expect(await rawRequest(r.address, a, { ":method": "GET", ":path": `/v1/segments/${id}` })).toMatchObject({ status: 405, body: { code: "METHOD_NOT_ALLOWED" } });
    expect(await put(`/v1/segments/${id}`, { "x-autonomy-segment-kind": "exe" })).toMatchObject({ status: 400, body: { code: "REQUEST_INVALID" } });
    expect(sink.stored.size).toBe(0);
    // The same request with a good id and kind is stored: the refusals above were the path's.
    expect(await put(`/v1/segments/${id}`)).toMatchObject({ status: 200, body: { segment_id: id, duplicate: false, inbox_seq: 1 } });
  });

  it("a slow receiver hits the ack timeout (RELAY_ACK_TIMEOUT, retryable) and the session stays usable", async () => {
    const sink = new MemorySinkDouble();
    sink.delayMs = 3000;
    const r = await receiver(sink);
    const t = transport(a, { ack: 300 });
    const bytes = Buffer.from("slow");
    const started = Date.now();
    const e = await failure(t.push({ id: "edge-b", address: r.address }, seg(bytes), bytes));
    expect(e.code).toBe("RELAY_ACK_TIMEOUT");
    expect(e.details.retryable).toBe(true);
    expect(Date.now() - started).toBeLessThan(2000);
    sink.delayMs = 0;
    const next = Buffer.from("fast again");
    await expect(t.push({ id: "edge-b", address: r.address }, seg(next), next)).resolves.toEqual({ duplicate: false });
    expect(r.sessions().total).toBe(1);
  });

  it("an aborted push rejects with the signal's reason at once", async () => {
    const sink = new MemorySinkDouble();
    sink.delayMs = 3000;
    const r = await receiver(sink);
    const ac = new AbortController();
    const bytes = Buffer.from("abort me");
    const p = transport().push({ id: "edge-b", address: r.address }, seg(bytes), bytes, ac.signal);
    setTimeout(() => ac.abort(new Error("executor stopping")), 100);
    const started = Date.now();
    await expect(p).rejects.toThrow("executor stopping");
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("a dead address is RELAY_PEER_UNREACHABLE within the dial timeout", async () => {
    const t = transport(a, { dial: 500 });
    const bytes = Buffer.from("to nobody");
    const port = await freeLoopbackPort(); // nobody listens: refused at once
    const refused = await failure(t.push({ id: "edge-b", address: `127.0.0.1:${port}` }, seg(bytes), bytes));
    expect(refused.code).toBe("RELAY_PEER_UNREACHABLE");
    expect(refused.details).toMatchObject({ retryable: true, cause_code: "ECONNREFUSED" });
    // A listener that accepts TCP and never answers TLS: the dial timeout ends it.
    const sockets: Socket[] = [];
    const mute: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((res) => mute.listen(0, "127.0.0.1", res));
    try {
      const started = Date.now();
      const e = await failure(t.push({ id: "edge-b", address: `127.0.0.1:${(mute.address() as AddressInfo).port}` }, seg(bytes), bytes));
      expect(e.code).toBe("RELAY_PEER_UNREACHABLE");
      expect(e.details).toMatchObject({ retryable: true, timeout: true });
      expect(Date.now() - started).toBeGreaterThanOrEqual(450);
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((res) => mute.close(res));
    }
  });

  it("many concurrent pushes share one session and all arrive intact", async () => {
    const sink = new MemorySinkDouble();
    const r = await receiver(sink, { max: 256 * 1024 });
    const t = transport();
    const segments = Array.from({ length: 64 }, (_, i) => Buffer.alloc(1024 * (i + 1), i));
    const results = await Promise.all(segments.map((s) => t.push({ id: "edge-b", address: r.address }, seg(s), s)));
    expect(results.every((x) => !x.duplicate)).toBe(true);
    expect(sink.stored.size).toBe(64);
    for (const s of segments) expect(Buffer.from(sink.stored.get(sha(s))?.bytes ?? []).equals(s)).toBe(true);
    expect(r.sessions()).toEqual({ open: 1, total: 1 });
  });

  it("4 MiB segments, eight in flight at a time on one session, all arrive (session memory and flow-control windows sized for them)", async () => {
    const sink = new MemorySinkDouble();
    const r = await receiver(sink, { max: 4 * 1024 * 1024 });
    const t = transport(a, { ack: 30_000 });
    const segments = Array.from({ length: 24 }, (_, i) => Buffer.alloc(4 * 1024 * 1024, i + 1));
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      for (let s = segments[next++]; s !== undefined; s = segments[next++]) await t.push({ id: "edge-b", address: r.address }, seg(s), s);
    }));
    expect(sink.stored.size).toBe(24);
    expect(r.sessions().total).toBe(1);
  });

  it("reconnects after the peer restarts on the same address", async () => {
    const sink = new MemorySinkDouble();
    const r = await receiver(sink);
    const t = transport();
    const one = Buffer.from("one");
    await t.push({ id: "edge-b", address: r.address }, seg(one), one);
    const address = r.address;
    await r.close();
    receivers.splice(receivers.indexOf(r), 1);
    const down = await failure(t.push({ id: "edge-b", address }, seg(one), one));
    expect(down.code).toBe("RELAY_PEER_UNREACHABLE");
    await receiver(sink, { listen: address });
    const two = Buffer.from("two");
    await expect(t.push({ id: "edge-b", address }, seg(two), two)).resolves.toEqual({ duplicate: false });
  });

  it("a receiver whose store is full answers 507 and the sender retries later (RELAY_PEER_ERROR, retryable)", async () => {
    const sink = new MemorySinkDouble();
    sink.failWith = new EdgeError("STORAGE_CEILING_EXCEEDED", "store full at /var/lib/x");
    const r = await receiver(sink);
    const bytes = Buffer.from("no room");
    const e = await failure(transport().push({ id: "edge-b", address: r.address }, seg(bytes), bytes));
    expect(e.code).toBe("RELAY_PEER_ERROR");
    expect(e.details).toMatchObject({ retryable: true, status: 507, peer_code: "STORAGE_CEILING_EXCEEDED" });
    expect(e.message).not.toContain("/var/lib/x");
  });
});
