/**
 * `autonomy serve` and the network: like the runtime (docs/security.md), the
 * control plane listens outside loopback only with TLS, since every request
 * carries a bearer secret; `insecureListen` is the explicit way around it.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { startControlPlane } from "../../src/orchestrator/index.js";
import type { ServingControlPlane } from "../../src/orchestrator/index.js";
import { createLogger } from "../../src/observability/index.js";
import { describeRun, runProcess } from "../helpers/cli.js";
import { needs } from "../helpers/needs.js";

const log = createLogger({ name: "serve-listen.test", level: "silent" });
const dirs: string[] = [];
const served: ServingControlPlane[] = [];
const tmp = async (): Promise<string> => {
  const d = await mkdtemp(join(tmpdir(), "cp-listen-"));
  dirs.push(d);
  return d;
};
afterEach(async () => {
  for (const s of served.splice(0)) await s.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

it("attack: autonomy serve refuses a non-loopback listener without TLS (operator tokens and node credentials would travel in clear text): CP_LISTEN_REFUSED, nothing created", async () => {
  const dir = await tmp();
  await expect(startControlPlane({ db: join(dir, "cp.db"), host: "0.0.0.0", port: 0, log })).rejects.toMatchObject({ code: "CP_LISTEN_REFUSED" });
  // Refused before the store is opened: no database file appeared.
  await expect(readFile(join(dir, "cp.db"))).rejects.toMatchObject({ code: "ENOENT" });
  // Loopback needs nothing; a wider address without TLS only when asked for explicitly.
  served.push(await startControlPlane({ db: join(dir, "cp.db"), host: "127.0.0.1", port: 0, log }));
  served.push(await startControlPlane({ db: join(dir, "cp2.db"), host: "0.0.0.0", port: 0, log, insecureListen: true }));
  expect(served.map((s) => s.url.startsWith("http://"))).toEqual([true, true]);
});

const openssl = needs("openssl");
openssl.it("attack: outside loopback only with TLS: autonomy serve --tls-cert/--tls-key answers HTTPS, checked by a real HTTPS client against the certificate", async () => {
  const dir = await tmp();
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const made = await runProcess("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=cp.test", "-addext", "subjectAltName=DNS:cp.test,IP:127.0.0.1"]);
  expect(made.code, describeRun(made)).toBe(0);
  await expect(startControlPlane({ db: join(dir, "bad.db"), host: "0.0.0.0", port: 0, log, tls: { cert: key, key: cert } })).rejects.toMatchObject({ code: "RUNTIME_TLS_INVALID" });
  const cp = await startControlPlane({ db: join(dir, "cp.db"), host: "0.0.0.0", port: 0, log, tls: { cert, key } });
  served.push(cp);
  expect(cp.url).toMatch(/^https:\/\//);
  const port = Number(new URL(cp.url).port);
  const ca = await readFile(cert);
  const status = await new Promise<number>((resolve, reject) => {
    const req = httpsRequest({ host: "127.0.0.1", port, path: "/healthz", servername: "cp.test", ca }, (res) => res.resume().on("end", () => resolve(res.statusCode ?? 0)));
    req.on("error", reject);
    req.end();
  });
  expect(status).toBe(200);
});
