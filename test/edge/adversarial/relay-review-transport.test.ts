/**
 * Adversarial review (issue 11, relay half): what an authenticated but lying
 * or greedy peer can make the receiver hold. The receiver allocates a buffer
 * of the declared content-length (up to max_segment_bytes) for every stream
 * before a byte arrives, and keeps every stream's bytes in memory until its
 * end; HTTP/2 lets the peer open as many concurrent streams as the receiver
 * advertises (Node's default: 2^32 − 1). The bound on memory per session is
 * max_concurrent_streams × max_segment_bytes, so it must be advertised small.
 */
import http2 from "node:http2";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { EdgeError, createPeerTransport, startRelayReceiver } from "../../../src/edge/index.js";
import { createHash } from "node:crypto";
import type { SegmentSink } from "../../../src/edge/index.js";
import { makeCa } from "../../helpers/fleet-certs.js";
import type { TestCa, TlsIdentity } from "../../helpers/fleet-certs.js";
import { needs } from "../../helpers/needs.js";

const openssl = needs("openssl");

openssl.describe("adversarial review: receiver resources under a greedy peer", () => {
  let dir: string;
  let fleet: TestCa;
  let a: TlsIdentity;
  let b: TlsIdentity;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "rev2-transport-"));
    fleet = await makeCa(dir, "fleet-ca");
    [a, b] = await Promise.all([fleet.issue("edge-a"), fleet.issue("edge-b")]);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("attack: a configured peer opening thousands of concurrent max-size streams — the receiver advertises a bounded SETTINGS_MAX_CONCURRENT_STREAMS", async () => {
    const sink: SegmentSink = { accept: () => Promise.resolve({ duplicate: false, inbox_seq: 1 }) };
    const r = await startRelayReceiver({ listen: "127.0.0.1:0", tls: b, peers: [{ id: "edge-a" }], sink, maxSegmentBytes: 64 * 1024 * 1024 });
    try {
      const s = http2.connect(`https://${r.address}`, { ...a, servername: "edge-b", minVersion: "TLSv1.3" });
      const settings = await new Promise<http2.Settings>((resolve, reject) => {
        s.once("remoteSettings", resolve);
        s.once("error", reject);
      });
      s.destroy();
      // 256 × 64 MiB is already 16 GiB: anything unbounded lets one peer exhaust the node's memory.
      expect(settings.maxConcurrentStreams ?? Number.MAX_SAFE_INTEGER).toBeLessThanOrEqual(256);
    } finally {
      await r.close();
    }
  });

  it("attack (reload race): a receiver that does not list this node YET (peers change only on restart) answers 403 UNKNOWN_PEER — the sender retries instead of dead-lettering every segment at the first attempt", async () => {
    const sink: SegmentSink = { accept: () => Promise.resolve({ duplicate: false, inbox_seq: 1 }) };
    const r = await startRelayReceiver({ listen: "127.0.0.1:0", tls: b, peers: [{ id: "edge-c" }], sink, maxSegmentBytes: 1024 });
    const t = createPeerTransport({ tls: a, dialTimeoutMs: 3000, ackTimeoutMs: 5000 });
    try {
      const bytes = Buffer.from("before edge-b's restart");
      const err = await t.push({ id: "edge-b", address: r.address }, { id: createHash("sha256").update(bytes).digest("hex"), size: bytes.length, kind: "data" }, bytes).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(EdgeError);
      expect((err as EdgeError).details).toMatchObject({ status: 403, peer_code: "UNKNOWN_PEER", retryable: true });
    } finally {
      await t.close();
      await r.close();
    }
  });

  it("attack: a lying peer answers 200 with another segment's id (or no duplicate flag) — the sender does not count it as acked (holds on main)", async () => {
    for (const body of [{ segment_id: "0".repeat(64), duplicate: false }, { segment_id: "SELF" }]) {
      const server = http2.createSecureServer({ cert: b.cert, key: b.key, ca: b.ca, requestCert: true, rejectUnauthorized: true, minVersion: "TLSv1.3" });
      server.on("stream", (st, h) => {
        st.on("data", () => undefined);
        st.on("end", () => {
          const id = String(h[":path"]).split("/").pop() ?? "";
          st.respond({ ":status": 200, "content-type": "application/json" });
          st.end(JSON.stringify(body.segment_id === "SELF" ? { segment_id: id } : body));
        });
      });
      await new Promise<void>((res) => server.listen(0, "127.0.0.1", () => res()));
      const port = (server.address() as { port: number }).port;
      const t = createPeerTransport({ tls: a, dialTimeoutMs: 3000, ackTimeoutMs: 5000 });
      try {
        const bytes = Buffer.from(`lie ${JSON.stringify(body)}`);
        const err = await t.push({ id: "edge-b", address: `127.0.0.1:${port}` }, { id: createHash("sha256").update(bytes).digest("hex"), size: bytes.length, kind: "data" }, bytes).then(() => undefined, (e: unknown) => e);
        expect((err as EdgeError | undefined)?.code).toBe("RELAY_PEER_ERROR");
      } finally {
        await t.close();
        await new Promise<void>((res) => { server.close(() => res()); });
      }
    }
  });
});
