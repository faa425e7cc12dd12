import { createHash, randomBytes } from "node:crypto";
import { connect, createServer } from "node:net";
import type { Server, Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { startImpairProxy } from "./impair-proxy.js";
import type { ImpairProxy } from "./impair-proxy.js";

/** A sink that answers each connection with the SHA-256 of everything it received, when the sender ends. */
async function hashServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => {
    const h = createHash("sha256");
    s.on("data", (c: Buffer) => h.update(c));
    s.on("end", () => s.end(h.digest("hex")));
    s.on("error", () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const a = server.address();
  return { server, port: typeof a === "object" && a !== null ? a.port : 0 };
}

async function send(address: string, bytes: Buffer): Promise<{ reply: string; ms: number }> {
  const [host, port] = address.split(":") as [string, string];
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const s: Socket = connect(Number(port), host, () => s.end(bytes));
    let reply = "";
    s.on("data", (c: Buffer) => (reply += c.toString()));
    s.on("end", () => resolve({ reply, ms: performance.now() - t0 }));
    s.on("error", reject);
  });
}

describe("impairment proxy (the relay labs' stand-in for tc netem)", () => {
  let proxy: ImpairProxy | undefined;
  let server: Server | undefined;
  afterEach(async () => {
    await proxy?.close();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  });

  it("forwards bytes unchanged in both directions", async () => {
    const t = await hashServer();
    server = t.server;
    proxy = await startImpairProxy({ host: "127.0.0.1", port: t.port }, { latencyMs: 5 });
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    const { reply } = await send(proxy.address, bytes);
    expect(reply).toBe(createHash("sha256").update(bytes).digest("hex"));
    expect(proxy.stats().bytes_up).toBe(bytes.length);
  });

  it("an outage resets every connection, and lifting it lets them through again", async () => {
    const t = await hashServer();
    server = t.server;
    proxy = await startImpairProxy({ host: "127.0.0.1", port: t.port }, { down: true });
    await expect(send(proxy.address, Buffer.from("x"))).rejects.toThrow(/ECONNRESET|socket hang up/);
    expect(proxy.stats().refused).toBe(1);
    proxy.set({ down: false });
    expect((await send(proxy.address, Buffer.from("x"))).reply).toHaveLength(64);
  });

  it("paces to the rate and holds the dial delay (lower bounds only: load can only slow it further)", async () => {
    const t = await hashServer();
    server = t.server;
    proxy = await startImpairProxy({ host: "127.0.0.1", port: t.port }, { bytesPerSecond: 256 * 1024, dialDelayMs: 200 });
    const { ms } = await send(proxy.address, randomBytes(128 * 1024));
    // 128 KiB at 256 KiB/s is ≥ 500 ms of pacing (the first chunk is paced too), plus the 200 ms dial delay.
    expect(ms).toBeGreaterThanOrEqual(600);
  });

  it("cuts one connection after N bytes upstream, once", async () => {
    const t = await hashServer();
    server = t.server;
    proxy = await startImpairProxy({ host: "127.0.0.1", port: t.port }, { cutAfterBytes: 500 });
    await expect(send(proxy.address, randomBytes(64 * 1024))).rejects.toThrow(/ECONNRESET|socket hang up/);
    expect(proxy.stats().cuts).toBe(1);
    const bytes = randomBytes(64 * 1024);
    expect((await send(proxy.address, bytes)).reply).toBe(createHash("sha256").update(bytes).digest("hex"));
  });
});
