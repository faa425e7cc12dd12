// A peer that dies in the middle of a push (the edged SIGKILL chaos run found this): the stream ends without
// any response headers. That is not a refusal: the push must fail as retryable, never RELAY_PEER_REJECTED
// (which is final and sends an acknowledged segment straight to DEADLETTER).
import { createHash } from "node:crypto";
import { readFile, mkdtemp, rm } from "node:fs/promises";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { EdgeError, createPeerTransport } from "../../src/edge/index.js";
import { initCa, issueCert, readTlsIdentity } from "../../src/pki/index.js";

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "relay-peer-gone-"));
  await initCa({ outDir: dir });
  for (const name of ["sender", "receiver"]) await issueCert({ caDir: dir, name });
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

for (const [how, cut] of [
  ["closes its connection", (s: TLSSocket) => s.end()],
  ["drops its connection", (s: TLSSocket) => s.destroy()],
] as const) {
  it(`a peer that ${how} mid-push (as a killed edged does) fails the push as retryable, not as a rejection`, async () => {
    const server = http2.createSecureServer({
      key: await readFile(join(dir, "receiver.key")), cert: await readFile(join(dir, "receiver.crt")), ca: await readFile(join(dir, "ca.crt")), requestCert: true, rejectUnauthorized: true,
    });
    // The real TLS socket (the session's .socket is a proxy that refuses manipulation), cut once a push's bytes arrive.
    let socket: TLSSocket | undefined;
    server.on("secureConnection", (s: TLSSocket) => (socket = s));
    server.on("stream", (s) => s.once("data", () => socket !== undefined && cut(socket)));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    const tls = await readTlsIdentity({ certFile: join(dir, "sender.crt"), keyFile: join(dir, "sender.key"), caFile: join(dir, "ca.crt") });
    const t = createPeerTransport({ tls, dialTimeoutMs: 2_000, ackTimeoutMs: 15_000 });
    const bytes = new Uint8Array(256 * 1024).fill(7);
    try {
      const err = await t.push({ id: "receiver", address: `127.0.0.1:${port}` }, { id: createHash("sha256").update(bytes).digest("hex"), size: bytes.byteLength, kind: "data" }, bytes).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(EdgeError);
      const e = err as EdgeError;
      expect(e.code, e.message).not.toBe("RELAY_PEER_REJECTED");
      expect(e.details?.retryable, e.message).toBe(true);
    } finally {
      await t.close();
      server.close();
    }
  }, 30_000);
}
