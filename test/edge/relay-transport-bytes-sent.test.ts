// Quota pays for bytes sent (docs/relay.md "Executor"): a failed push says how many body bytes left this node
// (`details.body_bytes_sent`), so the executor refunds the rest of the reservation.
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import http2 from "node:http2";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { EdgeError, createPeerTransport } from "../../src/edge/index.js";
import { initCa, issueCert, readTlsIdentity } from "../../src/pki/index.js";

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "relay-bytes-sent-"));
  await initCa({ outDir: dir });
  for (const name of ["sender", "receiver"]) await issueCert({ caDir: dir, name });
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function transport(ackTimeoutMs = 15_000) {
  const tls = await readTlsIdentity({ certFile: join(dir, "sender.crt"), keyFile: join(dir, "sender.key"), caFile: join(dir, "ca.crt") });
  return createPeerTransport({ tls, dialTimeoutMs: 2_000, ackTimeoutMs });
}

function segment(size: number): { info: { id: string; size: number; kind: "data" }; bytes: Uint8Array } {
  const bytes = new Uint8Array(size).fill(3);
  return { info: { id: createHash("sha256").update(bytes).digest("hex"), size, kind: "data" }, bytes };
}

/** A port nothing listens on (bound, closed again). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

it("failed attempts use up quota: a push refused with ECONNREFUSED reports 0 body bytes sent", async () => {
  const t = await transport();
  const { info, bytes } = segment(1024 * 1024);
  try {
    const err = await t.push({ id: "receiver", address: `127.0.0.1:${await closedPort()}` }, info, bytes).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(EdgeError);
    expect((err as EdgeError).code).toBe("RELAY_PEER_UNREACHABLE");
    expect((err as EdgeError).details).toMatchObject({ retryable: true, body_bytes_sent: 0 });
  } finally {
    await t.close();
  }
});

it("failed attempts use up quota: a peer that stops reading mid-body reports only the bytes it let through", async () => {
  const server = http2.createSecureServer({
    key: await readFile(join(dir, "receiver.key")), cert: await readFile(join(dir, "receiver.crt")), ca: await readFile(join(dir, "ca.crt")), requestCert: true, rejectUnauthorized: true,
  });
  // Reads nothing and never answers: HTTP/2 flow control holds the rest of the body in the sender.
  server.on("stream", (s) => s.pause());
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const t = await transport(1_500);
  const { info, bytes } = segment(8 * 1024 * 1024);
  try {
    const err = await t.push({ id: "receiver", address: `127.0.0.1:${(server.address() as AddressInfo).port}` }, info, bytes).then(() => undefined, (e: unknown) => e);
    expect((err as EdgeError).code).toBe("RELAY_ACK_TIMEOUT");
    const sent = (err as EdgeError).details?.body_bytes_sent as number;
    expect(sent).toBeGreaterThan(60_000); // the first flow-control window went out

    expect(sent).toBeLessThan(info.size / 2);
  } finally {
    await t.close();
    server.close();
  }
}, 30_000);

it("failed attempts use up quota: a body sent in full and never acknowledged is charged in full", async () => {
  const server = http2.createSecureServer({
    key: await readFile(join(dir, "receiver.key")), cert: await readFile(join(dir, "receiver.crt")), ca: await readFile(join(dir, "ca.crt")), requestCert: true, rejectUnauthorized: true,
  });
  server.on("stream", (s) => s.resume()); // reads everything, answers nothing
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const t = await transport(1_500);
  const { info, bytes } = segment(512 * 1024);
  try {
    const err = await t.push({ id: "receiver", address: `127.0.0.1:${(server.address() as AddressInfo).port}` }, info, bytes).then(() => undefined, (e: unknown) => e);
    expect((err as EdgeError).code).toBe("RELAY_ACK_TIMEOUT");
    expect((err as EdgeError).details?.body_bytes_sent).toBe(info.size);
  } finally {
    await t.close();
    server.close();
  }
}, 30_000);
