/**
 * The node's transport to the control plane over TLS with a private CA
 * (`--server-ca`): a real HTTPS server whose certificate openssl made, a real
 * client. Without the CA the certificate is refused (no bearer secret is sent
 * to a server the node cannot authenticate); with it, calls work, including
 * a 304 (no body) and the refusal to follow a redirect.
 */
import { createServer } from "node:https";
import type { Server } from "node:https";
import type { AddressInfo } from "node:net";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect } from "vitest";
import { CpClient } from "../../src/cpapi/index.js";
import { initStateRoot } from "../../src/node/index.js";
import { ensureEnrolled } from "../../src/runtime/index.js";
import { needs } from "../helpers/needs.js";
import { describeRun, runJson, runProcess } from "../helpers/cli.js";

const openssl = needs("openssl");
let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** An HTTPS "control plane" on loopback with a certificate only `ca.pem` vouches for. */
async function privateCaServer(dir: string): Promise<{ url: string; caPath: string; hits: string[] }> {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const made = await runProcess("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=cp.test", "-addext", "subjectAltName=IP:127.0.0.1"]);
  expect(made.code, describeRun(made)).toBe(0);
  const hits: string[] = [];
  server = createServer({ cert: await readFile(cert), key: await readFile(key) }, (req, res) => {
    hits.push(`${req.method} ${req.url} ${req.headers.authorization ?? "-"}`);
    if (req.url === "/healthz") res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
    else if (req.url?.startsWith("/v1/releases/latest")) res.writeHead(304, { etag: '"e1"' }).end();
    else if (req.url === "/v1/nodes/enroll") res.writeHead(401, { "content-type": "application/problem+json" }).end('{"type":"about:blank","title":"Unauthorized","status":401,"code":"ENROLLMENT_TOKEN_INVALID","detail":"wrong token"}');
    else res.writeHead(307, { location: "https://127.0.0.1:9/elsewhere" }).end();
  });
  await new Promise<void>((r) => server?.listen(0, "127.0.0.1", () => r()));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, caPath: cert, hits };
}

openssl.it("attack impostor control plane: over https the node sends its bearer secrets only to a certificate its CA vouches for; --server-ca trusts a private CA (304, problem details, no redirect)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "cp-ca-"));
  const { url, caPath, hits } = await privateCaServer(dir);
  const ca = await readFile(caPath, "utf8");
  const token = `aon_${"0".repeat(16)}_${"1".repeat(64)}`;
  // Without the CA: the TLS handshake fails, nothing reaches the server.
  const untrusted = await new CpClient({ baseUrl: url, token, timeoutMs: 3000 }).latestRelease("stable", undefined).catch((e: unknown) => e);
  expect((untrusted as { code?: string }).code).toBe("CP_REQUEST_FAILED");
  expect(hits).toEqual([]);
  // With it: answers are read as over fetch.
  const c = new CpClient({ baseUrl: url, token, timeoutMs: 3000, ca });
  expect(await c.healthz()).toEqual({ ok: true });
  expect(await c.latestRelease("stable", '"e1"')).toEqual({ status: "not_modified" });
  expect(await c.listNodes().catch((e: unknown) => (e as { code?: string }).code)).toBe("CP_REQUEST_REJECTED"); // a 307 is not followed
  expect(hits.at(-1)).toMatch(/^GET \/v1\/nodes/);
  expect(hits).toHaveLength(3);
  // Enrollment through the node's path carries the CA too (and a CA without https is refused).
  const stateRoot = join(dir, "state");
  await initStateRoot(stateRoot);
  await expect(ensureEnrolled({ stateRoot, server: url, enrollToken: "nope", nodeId: "edge-1", ca })).rejects.toMatchObject({ code: "NODE_ENROLLMENT_REFUSED" });
  await expect(ensureEnrolled({ stateRoot, server: url, enrollToken: "nope", nodeId: "edge-1" })).rejects.toMatchObject({ code: "CP_REQUEST_FAILED" });
  expect(() => new CpClient({ baseUrl: "http://127.0.0.1:9", ca })).toThrow(/https/);
  // The CLI reads --server-ca FILE.
  await writeFile(join(dir, "ca-copy.pem"), ca);
  const r = await runJson(["runtime", "start", "--state-root", stateRoot, "--server", url, "--server-ca", join(dir, "ca-copy.pem"), "--enroll-token", "nope", "--node-id", "edge-1", "--no-http"]);
  expect(r.json).toMatchObject({ ok: false, code: "NODE_ENROLLMENT_REFUSED" });
});
