// Independent checks of the fleet certificates: OpenSSL (which we did not write) verifies and
// prints what we issue, reads back to us what it issues, and Node's TLS stack runs a real mutual-TLS
// handshake with them — and refuses a certificate from another CA or an expired one.
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, createServer } from "node:tls";
import type { TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { certSummary, checkCertificates, initCa, issueCert, readTlsIdentity } from "../../src/pki/index.js";
import type { TlsIdentity, WrittenIdentity } from "../../src/pki/index.js";
import { needs } from "../helpers/needs.js";

const withOpenssl = needs("openssl");
const DAY = 24 * 3600 * 1000;

function openssl(args: string[], cwd: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync("openssl", args, { cwd, encoding: "utf8" });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir: string;
let ca: WrittenIdentity;
let a: WrittenIdentity;
let b: WrittenIdentity;
let rogue: WrittenIdentity;
let expired: WrittenIdentity;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "pki-interop-"));
  ca = await initCa({ outDir: join(dir, "ca") });
  a = await issueCert({ caDir: join(dir, "ca"), name: "edge-a", sans: ["127.0.0.1", "localhost"] });
  b = await issueCert({ caDir: join(dir, "ca"), name: "edge-b" });
  await initCa({ outDir: join(dir, "rogue-ca") });
  rogue = await issueCert({ caDir: join(dir, "rogue-ca"), name: "edge-b" });
  expired = await issueCert({ caDir: join(dir, "ca"), name: "edge-old", notBefore: new Date(Date.now() - 30 * DAY), notAfter: new Date(Date.now() - DAY) });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

withOpenssl.describe("OpenSSL reads what we issue", () => {
  it("openssl verify -CAfile ca.crt node.crt passes; a certificate of another CA fails", () => {
    const ok = openssl(["verify", "-CAfile", ca.certFile, a.certFile], dir);
    expect(ok.stdout + ok.stderr).toContain(": OK");
    expect(ok.status).toBe(0);
    const bad = openssl(["verify", "-CAfile", ca.certFile, rogue.certFile], dir);
    expect(bad.status).not.toBe(0);
  });

  it("openssl x509 -text shows the EKUs, SANs, key usage and the CA's constraints", () => {
    const leaf = openssl(["x509", "-in", a.certFile, "-noout", "-text"], dir).stdout;
    expect(leaf).toContain("TLS Web Server Authentication, TLS Web Client Authentication");
    expect(leaf).toContain("DNS:edge-a, IP Address:127.0.0.1, DNS:localhost");
    expect(leaf).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
    expect(leaf).toMatch(/CA:FALSE/);
    expect(leaf).toContain("Subject: CN = edge-a");
    expect(leaf).toContain("ASN1 OID: prime256v1");
    const root = openssl(["x509", "-in", ca.certFile, "-noout", "-text"], dir).stdout;
    expect(root).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(root).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
  });

  it("openssl reads the private keys as unencrypted PKCS#8 P-256", () => {
    const r = openssl(["pkey", "-in", a.keyFile, "-noout", "-text"], dir);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("prime256v1");
  });

  it("certSummary and checkCertificates read certificates OpenSSL made (SEC1 key, SANs, fingerprint)", async () => {
    const w = join(dir, "ossl");
    await mkdir(w, { recursive: true });
    const steps: string[][] = [
      ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"],
      ["req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=ossl CA", "-days", "30", "-out", "ca.crt", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
      ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "n.key"],
      ["req", "-new", "-key", "n.key", "-subj", "/CN=node-x", "-out", "n.csr"],
      ["x509", "-req", "-in", "n.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "20", "-out", "n.crt", "-extfile", "ext.cnf"],
    ];
    for (const s of steps.slice(0, 4)) expect(openssl(s, w).status, s.join(" ")).toBe(0);
    await writeFile(join(w, "ext.cnf"), "subjectAltName=DNS:node-x,IP:10.0.0.7\nextendedKeyUsage=serverAuth,clientAuth\n");
    const ext = spawnSync("openssl", steps[4] ?? [], { cwd: w, encoding: "utf8" });
    expect(ext.status, ext.stderr).toBe(0);
    const s = certSummary(await readFile(join(w, "n.crt"), "utf8"));
    expect(s).toMatchObject({ subject_cn: "node-x", issuer_cn: "ossl CA", sans: ["DNS:node-x", "IP:10.0.0.7"], extended_key_usage: ["serverAuth", "clientAuth"], is_ca: false });
    const fp = openssl(["x509", "-in", "n.crt", "-noout", "-fingerprint", "-sha256"], w).stdout.trim().split("=")[1]?.replace(/:/g, "").toLowerCase();
    expect(s.sha256_fingerprint).toBe(fp);
    const serial = openssl(["x509", "-in", "n.crt", "-noout", "-serial"], w).stdout.trim().split("=")[1]?.toLowerCase();
    expect(s.serial).toBe(serial);
    const files = { certFile: join(w, "n.crt"), keyFile: join(w, "n.key"), caFile: join(w, "ca.crt") };
    expect(await checkCertificates({ ...files, minValidDays: 7 })).toEqual([]);
    expect((await checkCertificates({ ...files, minValidDays: 25 })).map((p) => p.code)).toEqual(["CERT_EXPIRING"]);
    await expect(readTlsIdentity(files)).resolves.toBeDefined();
  });
});

interface Handshake {
  /** The client read the server's greeting: both sides accepted each other. */
  ok: boolean;
  /** The CN of the server's certificate as the client saw it. */
  peer?: string;
  /** The client's error, and the server's (tlsClientError), when refused. */
  error?: string;
  serverError?: string;
  /** Why the server's TLS stack did not authorize the client (`authorizationError`), from a second, recording server. */
  refusedBecause?: string;
}

/** One handshake against a TLS server demanding a client certificate; waits for both sides' outcome. */
async function handshake(server: TlsIdentity, client: TlsIdentity, servername = "edge-a"): Promise<Handshake> {
  let serverSide!: (e?: string) => void;
  const serverDone = new Promise<string | undefined>((r) => { serverSide = r; });
  const srv = createServer({ ...server, requestCert: true, rejectUnauthorized: true }, (s) => {
    serverSide();
    s.end("hello");
  });
  srv.on("tlsClientError", (e) => serverSide(e.message));
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  try {
    const clientSide = await new Promise<Handshake>((resolve) => {
      const sock: TLSSocket = connect({ host: "127.0.0.1", port, servername, ...client });
      let data = "";
      sock.on("data", (d: Buffer) => { data += d.toString(); });
      sock.on("end", () => {
        const peer = sock.getPeerCertificate().subject?.CN;
        resolve({ ok: data === "hello", ...(peer === undefined ? {} : { peer: String(peer) }) });
      });
      sock.on("error", (e: Error) => { serverSide("(the client gave up first)"); resolve({ ok: false, error: e.message }); });
    });
    const serverError = await serverDone;
    const refusedBecause = clientSide.ok ? undefined : await authorizationError(server, client, servername);
    return { ...clientSide, ...(serverError === undefined ? {} : { serverError }), ...(refusedBecause === undefined ? {} : { refusedBecause }) };
  } finally {
    await new Promise((r) => srv.close(r));
  }
}

/**
 * With rejectUnauthorized the server just drops the connection (the client sees "socket hang up"):
 * to learn why, the same handshake against a server that records `authorizationError` instead.
 */
async function authorizationError(server: TlsIdentity, client: TlsIdentity, servername: string): Promise<string | undefined> {
  let why: string | undefined;
  const srv = createServer({ ...server, requestCert: true, rejectUnauthorized: false }, (s) => {
    why = s.authorized ? undefined : String(s.authorizationError);
    s.end();
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  try {
    await new Promise<void>((resolve) => {
      const sock = connect({ host: "127.0.0.1", port, servername, ...client });
      sock.on("data", () => undefined);
      sock.on("end", () => resolve());
      sock.on("error", () => resolve());
    });
    return why;
  } finally {
    await new Promise((r) => srv.close(r));
  }
}

describe("mutual TLS with issued certificates (node:tls)", () => {
  const id = (w: WrittenIdentity) => readTlsIdentity({ ...w, caFile: ca.certFile });

  it("two certificates of the fleet CA complete a mutual-TLS handshake, each naming the other", async () => {
    const r = await handshake(await id(a), await id(b));
    expect(r).toEqual({ ok: true, peer: "edge-a" });
    expect((await handshake(await id(b), await id(a), "edge-b")).ok).toBe(true);
  });

  it("attack trust (another CA): a client certificate from another CA is refused by the server", async () => {
    // readTlsIdentity does not judge the issuer (checkCertificates does): the TLS stack must refuse it.
    const r = await handshake(await id(a), await readTlsIdentity({ ...rogue, caFile: ca.certFile }));
    expect(r.ok).toBe(false);
    expect(r.refusedBecause).toBe("UNABLE_TO_VERIFY_LEAF_SIGNATURE");
  });

  it("attack trust (another CA): a server certificate from another CA is refused by the client", async () => {
    const rogueServer = await issueCert({ caDir: join(dir, "rogue-ca"), name: "edge-a", outDir: join(dir, "rogue-srv") });
    const r = await handshake({ cert: await readFile(rogueServer.certFile), key: await readFile(rogueServer.keyFile), ca: await readFile(ca.certFile) }, await id(b));
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/unable to verify|self.signed|certificate/i);
  });

  it("attack trust (expired): an expired client certificate is refused, and a server named otherwise than the peer expected is refused", async () => {
    const old = await handshake(await id(a), await id(expired));
    expect(old.ok).toBe(false);
    expect(old.refusedBecause).toBe("CERT_HAS_EXPIRED");
    const misnamed = await handshake(await id(a), await id(b), "edge-z");
    expect(misnamed.ok).toBe(false);
    expect(misnamed.error).toMatch(/Hostname\/IP does not match|altnames/i);
  });

  it("attack trust (none): a client without a certificate is refused", async () => {
    const ca0 = await readFile(ca.certFile);
    const r = await handshake(await id(a), { ca: ca0 } as TlsIdentity);
    expect(r.ok).toBe(false);
    expect(r.refusedBecause).toBe("UNABLE_TO_GET_ISSUER_CERT");
  });
});
