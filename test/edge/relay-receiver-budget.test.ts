/**
 * The receiver's in-flight byte budget: a configured peer that declares many
 * large bodies and never sends them cannot make the receiver reserve more
 * than inFlightBudget(max_segment_bytes); past it the answer is 503
 * RECEIVER_BUSY (retryable on the sender), and the budget frees as streams end.
 */
import http2 from "node:http2";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startRelayReceiver } from "../../src/edge/index.js";
import type { SegmentSink } from "../../src/edge/index.js";
import { inFlightBudget } from "../../src/edge/relay/transport/receiver.js";
import { makeCa } from "../helpers/fleet-certs.js";
import type { TestCa, TlsIdentity } from "../helpers/fleet-certs.js";
import { needs } from "../helpers/needs.js";

const openssl = needs("openssl");

openssl.describe("relay receiver: bytes in flight", () => {
  let dir: string;
  let fleet: TestCa;
  let a: TlsIdentity;
  let b: TlsIdentity;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "recv-budget-"));
    fleet = await makeCa(dir, "fleet-ca");
    [a, b] = await Promise.all([fleet.issue("edge-a"), fleet.issue("edge-b")]);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("the budget is 8 x max_segment_bytes capped at 256 MiB, never below one segment", () => {
    expect(inFlightBudget(1024)).toBe(8192);
    expect(inFlightBudget(64 * 1024 * 1024)).toBe(256 * 1024 * 1024);
    expect(inFlightBudget(512 * 1024 * 1024)).toBe(512 * 1024 * 1024);
  });

  it("attack: a peer declaring more max-size bodies than the budget holds (sending none) gets 503 RECEIVER_BUSY; the budget frees when a stream ends", async () => {
    const sink: SegmentSink = { accept: () => Promise.resolve({ duplicate: false, inbox_seq: 1 }) };
    const max = 1024;
    const r = await startRelayReceiver({ listen: "127.0.0.1:0", tls: b, peers: [{ id: "edge-a" }], sink, maxSegmentBytes: max });
    const s = http2.connect(`https://${r.address}`, { ...a, servername: "edge-b", minVersion: "TLSv1.3" });
    s.on("error", () => undefined);
    const open = (): http2.ClientHttp2Stream => s.request({ ":method": "PUT", ":path": `/v1/segments/${"a".repeat(64)}`, "x-autonomy-segment-kind": "data", "content-length": String(max) }, { endStream: false });
    const status = (st: http2.ClientHttp2Stream): Promise<number> => new Promise((res) => {
      st.on("error", () => undefined);
      st.once("response", (h) => res(Number(h[":status"])));
    });
    try {
      const held = Array.from({ length: inFlightBudget(max) / max }, open);
      for (const st of held) st.write(Buffer.alloc(1)); // the receiver has seen each stream (and reserved) before the next one
      await new Promise((res) => setTimeout(res, 300));
      const extra = open();
      expect(await status(extra)).toBe(503);
      const first = held[0];
      if (first === undefined) throw new Error("no stream");
      first.close(http2.constants.NGHTTP2_CANCEL);
      await new Promise((res) => setTimeout(res, 300));
      const again = open();
      const answered = status(again);
      again.end(Buffer.alloc(max - 0));
      // Admitted now (the bytes do not match the id: 422, not 503).
      expect(await answered).toBe(422);
      for (const st of held) st.close(http2.constants.NGHTTP2_CANCEL);
    } finally {
      s.destroy();
      await r.close();
    }
  });
});
