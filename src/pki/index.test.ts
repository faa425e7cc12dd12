import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PkiError, certSummary, checkCertificates, initCa, issueCert, readTlsIdentity } from "./index.js";
import type { WrittenIdentity } from "./index.js";

const DAY = 24 * 3600 * 1000;
let dir: string;
let ca: WrittenIdentity;
let node: WrittenIdentity;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "pki-"));
  ca = await initCa({ outDir: join(dir, "ca") });
  node = await issueCert({ caDir: join(dir, "ca"), name: "edge-a", sans: ["127.0.0.1", "localhost"], outDir: join(dir, "nodes") });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<PkiError> {
  const e: unknown = await p.then(() => undefined, (err: unknown) => err);
  if (!(e instanceof PkiError)) throw new Error(`expected a PkiError, got ${String(e)}`);
  return e;
}

describe("initCa", () => {
  it("writes a P-256 CA: ca.key PKCS#8 mode 0600, ca.crt a CA certificate", async () => {
    expect(ca.certFile).toBe(join(dir, "ca", "ca.crt"));
    expect((await stat(ca.keyFile)).mode & 0o777).toBe(0o600);
    expect(await readFile(ca.keyFile, "utf8")).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const s = certSummary(await readFile(ca.certFile, "utf8"));
    expect(s).toMatchObject({ subject_cn: "AutonomyOps fleet CA", issuer_cn: "AutonomyOps fleet CA", is_ca: true, sans: [] });
    expect(Date.parse(s.not_after) - Date.now()).toBeGreaterThan(3649 * DAY);
  });

  it("refuses to replace an existing CA without force, and replaces it with force", async () => {
    const before = await readFile(ca.certFile, "utf8");
    const e = await rejection(initCa({ outDir: join(dir, "ca") }));
    expect(e.code).toBe("CA_EXISTS");
    expect(e.message).toContain("ca.crt already exists");
    expect(await readFile(ca.certFile, "utf8")).toBe(before);
    const other = join(dir, "ca-forced");
    await initCa({ outDir: other });
    const first = await readFile(join(other, "ca.crt"), "utf8");
    await initCa({ outDir: other, force: true, name: "second" });
    expect(await readFile(join(other, "ca.crt"), "utf8")).not.toBe(first);
    expect(certSummary(await readFile(join(other, "ca.crt"), "utf8")).subject_cn).toBe("second");
  });
});

describe("issueCert", () => {
  it("issues CN = DNS SAN = name, the asked SANs, serverAuth + clientAuth, 90 days, a 16-byte positive serial", async () => {
    expect(node).toEqual({ certFile: join(dir, "nodes", "edge-a.crt"), keyFile: join(dir, "nodes", "edge-a.key") });
    expect((await stat(node.keyFile)).mode & 0o777).toBe(0o600);
    const s = certSummary(await readFile(node.certFile, "utf8"));
    expect(s).toMatchObject({
      subject_cn: "edge-a", issuer_cn: "AutonomyOps fleet CA", is_ca: false,
      sans: ["DNS:edge-a", "IP:127.0.0.1", "DNS:localhost"], extended_key_usage: ["serverAuth", "clientAuth"],
    });
    expect(s.serial).toMatch(/^[4-7][0-9a-f]{31}$/);
    const days = (Date.parse(s.not_after) - Date.parse(s.not_before)) / DAY;
    expect(days).toBeGreaterThan(90);
    expect(days).toBeLessThan(90.01);
  });

  it("gives every certificate its own serial", async () => {
    const a = await issueCert({ caDir: join(dir, "ca"), name: "serial-a", outDir: join(dir, "serials") });
    const b = await issueCert({ caDir: join(dir, "ca"), name: "serial-b", outDir: join(dir, "serials") });
    const [sa, sb] = [certSummary(await readFile(a.certFile, "utf8")), certSummary(await readFile(b.certFile, "utf8"))];
    expect(sa.serial).not.toBe(sb.serial);
    // The CA's issued log names both (what revocation by name will read).
    const log = (await readFile(join(dir, "ca", "issued.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(log.find((r) => r.serial === sa.serial)).toMatchObject({ subject_cn: "serial-a", cert_file: a.certFile, sha256_fingerprint: sa.sha256_fingerprint });
    expect(log.find((r) => r.serial === sb.serial)).toMatchObject({ subject_cn: "serial-b", not_after: sb.not_after });
  });

  it("refuses names that could not be a node id or a file name, and bad SANs", async () => {
    for (const name of ["../evil", "a/b", "", "-x", "a b", "x".repeat(129)]) {
      expect((await rejection(issueCert({ caDir: join(dir, "ca"), name }))).code, name).toBe("CERT_NAME_INVALID");
    }
    expect((await rejection(issueCert({ caDir: join(dir, "ca"), name: "ok", sans: ["not a name!"] }))).code).toBe("CERT_NAME_INVALID");
  });

  it("refuses a validity beyond the CA's, zero days, or an empty window", async () => {
    const caDir = join(dir, "ca");
    expect((await rejection(issueCert({ caDir, name: "n", days: 3700 }))).code).toBe("CERT_VALIDITY_INVALID");
    expect((await rejection(issueCert({ caDir, name: "n", days: 0 }))).code).toBe("CERT_VALIDITY_INVALID");
    const t = new Date();
    expect((await rejection(issueCert({ caDir, name: "n", notBefore: t, notAfter: t }))).code).toBe("CERT_VALIDITY_INVALID");
  });

  it("refuses a CA directory without a CA, or whose key is not the CA's", async () => {
    expect((await rejection(issueCert({ caDir: join(dir, "nowhere"), name: "n" }))).code).toBe("CA_UNREADABLE");
    const mixed = join(dir, "mixed");
    await initCa({ outDir: mixed });
    await writeFile(join(mixed, "ca.key"), await readFile(ca.keyFile));
    expect((await rejection(issueCert({ caDir: mixed, name: "n" }))).code).toBe("CERT_KEY_MISMATCH");
    const notCa = join(dir, "not-ca");
    await issueCert({ caDir: join(dir, "ca"), name: "leaf", outDir: notCa });
    await writeFile(join(notCa, "ca.crt"), await readFile(join(notCa, "leaf.crt")));
    await writeFile(join(notCa, "ca.key"), await readFile(join(notCa, "leaf.key")));
    const e = await rejection(issueCert({ caDir: notCa, name: "n" }));
    expect(e.code).toBe("CA_UNREADABLE");
    expect(e.message).toContain("basicConstraints");
  });
});

describe("reading certificates", () => {
  it("garbage or truncated PEM is CERT_UNREADABLE naming the file and what is wrong", async () => {
    const pem = await readFile(node.certFile, "utf8");
    const cases: [string, string, RegExp][] = [
      ["garbage.crt", "hello world\n", /garbage\.crt: it has no PEM certificate/],
      ["truncated.crt", pem.slice(0, pem.length - 40), /truncated\.crt: its certificate block is truncated/],
      ["cut-der.crt", `-----BEGIN CERTIFICATE-----\n${pem.split("\n")[1] ?? ""}\n-----END CERTIFICATE-----\n`, /cut-der\.crt: certificate 1 is not a valid X\.509 certificate/],
      ["bad-b64.crt", "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", /bad-b64\.crt: certificate 1 is not valid base64/],
      ["empty.crt", "", /empty\.crt: it has no PEM certificate/],
    ];
    for (const [name, text, message] of cases) {
      const e = (() => { try { certSummary(text, name); } catch (err) { return err; } return undefined; })();
      expect(e, name).toBeInstanceOf(PkiError);
      expect((e as PkiError).code, name).toBe("CERT_UNREADABLE");
      expect((e as PkiError).message, name).toMatch(message);
    }
  });

  it("readTlsIdentity returns the three PEM buffers, and refuses a key that is not the certificate's", async () => {
    const id = await readTlsIdentity({ certFile: node.certFile, keyFile: node.keyFile, caFile: ca.certFile });
    expect(id.cert.toString()).toContain("BEGIN CERTIFICATE");
    expect(id.key.toString()).toContain("BEGIN PRIVATE KEY");
    expect(id.ca.equals(await readFile(ca.certFile))).toBe(true);
    expect((await rejection(readTlsIdentity({ certFile: node.certFile, keyFile: ca.keyFile, caFile: ca.certFile }))).code).toBe("CERT_KEY_MISMATCH");
    for (const type of ["rsa", "ed25519"] as const) {
      const other = join(dir, `${type}.key`);
      const key = type === "rsa" ? generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey : generateKeyPairSync("ed25519").privateKey;
      await writeFile(other, key.export({ type: "pkcs8", format: "pem" }));
      expect((await rejection(readTlsIdentity({ certFile: node.certFile, keyFile: other, caFile: ca.certFile }))).code, type).toBe("CERT_KEY_MISMATCH");
    }
    const missing = await rejection(readTlsIdentity({ certFile: join(dir, "missing.crt"), keyFile: node.keyFile, caFile: ca.certFile }));
    expect(missing.code).toBe("CERT_UNREADABLE");
    expect(missing.message).toMatch(/missing\.crt: cannot read it \(ENOENT\)/);
  });
});

describe("checkCertificates", () => {
  const files = () => ({ certFile: node.certFile, keyFile: node.keyFile, caFile: ca.certFile });

  it("finds nothing wrong with a fresh certificate", async () => {
    expect(await checkCertificates(files())).toEqual([]);
  });

  it("reports expiring within minValidDays, expired, and not yet valid", async () => {
    const now = Date.now();
    const soon = await issueCert({ caDir: join(dir, "ca"), name: "soon", outDir: join(dir, "t"), notBefore: new Date(now - DAY), notAfter: new Date(now + 3 * DAY) });
    const f = { ...soon, caFile: ca.certFile };
    expect((await checkCertificates({ ...f, now })).map((p) => p.code)).toEqual(["CERT_EXPIRING"]);
    expect(await checkCertificates({ ...f, now, minValidDays: 2 })).toEqual([]);
    expect((await checkCertificates({ ...f, now: now + 4 * DAY })).map((p) => p.code)).toEqual(["CERT_EXPIRED"]);
    const later = await issueCert({ caDir: join(dir, "ca"), name: "later", outDir: join(dir, "t"), notBefore: new Date(now + DAY), notAfter: new Date(now + 30 * DAY) });
    expect((await checkCertificates({ ...later, caFile: ca.certFile, now })).map((p) => p.code)).toEqual(["CERT_NOT_YET_VALID"]);
    expect((await checkCertificates({ ...f, now })).map((p) => p.message)[0]).toMatch(/certificate CN=soon in .*soon\.crt expires .* \(in 2 days, under 7\)/);
  });

  it("reports a certificate of another CA, a mismatched key, and every unreadable file at once", async () => {
    const other = join(dir, "other-ca");
    const otherCa = await initCa({ outDir: other });
    expect((await checkCertificates({ ...files(), caFile: otherCa.certFile })).map((p) => p.code)).toEqual(["CERT_NOT_ISSUED_BY_CA"]);
    expect((await checkCertificates({ ...files(), keyFile: otherCa.keyFile })).map((p) => p.code)).toEqual(["CERT_KEY_MISMATCH"]);
    const bad = join(dir, "bad.pem");
    await writeFile(bad, "-----BEGIN CERTIFICATE-----\nAAAA\n");
    const problems = await checkCertificates({ certFile: bad, keyFile: join(dir, "none.key"), caFile: bad });
    expect(problems.map((p) => [p.code, p.file])).toEqual([["CERT_UNREADABLE", bad], ["CERT_UNREADABLE", join(dir, "none.key")], ["CERT_UNREADABLE", bad]]);
  });

  it("accepts a CA bundle (old and new CA during a rotation) and checks the CA's own expiry", async () => {
    const other = await initCa({ outDir: join(dir, "bundle-ca"), days: 5 });
    const bundle = join(dir, "bundle.crt");
    await writeFile(bundle, (await readFile(other.certFile, "utf8")) + (await readFile(ca.certFile, "utf8")));
    const problems = await checkCertificates({ ...files(), caFile: bundle });
    expect(problems.map((p) => p.code)).toEqual(["CERT_EXPIRING"]);
    expect(problems[0]?.message).toContain("CA certificate CN=AutonomyOps fleet CA");
  });
});

describe("checkCertificates: name, key mode and bounded reads", () => {
  const files = () => ({ certFile: node.certFile, keyFile: node.keyFile, caFile: ca.certFile });

  it("reports a certificate issued to another name than the expected one (the identity is the CN; a DNS SAN is not)", async () => {
    expect(await checkCertificates({ ...files(), expectedName: "edge-a" })).toEqual([]);
    // Its DNS SAN localhost is for TLS to a loopback address, not an identity (src/pki/identity.ts).
    expect((await checkCertificates({ ...files(), expectedName: "localhost" })).map((x) => x.code)).toEqual(["CERT_NAME_MISMATCH"]);
    const p = await checkCertificates({ ...files(), expectedName: "edge-b" });
    expect(p.map((x) => x.code)).toEqual(["CERT_NAME_MISMATCH"]);
    expect(p[0]?.message).toMatch(/"edge-a".*not to this node "edge-b"/);
  });

  it("reports a private key readable by group or others, with the chmod to run", async () => {
    const { chmod, copyFile } = await import("node:fs/promises");
    const key = join(dir, "loose.key");
    await copyFile(node.keyFile, key);
    for (const mode of [0o640, 0o604, 0o644]) {
      await chmod(key, mode);
      const p = await checkCertificates({ ...files(), keyFile: key });
      expect(p.map((x) => x.code), mode.toString(8)).toEqual(["CERT_KEY_INSECURE"]);
      expect(p[0]?.message).toContain(`chmod 600 ${key}`);
    }
    await chmod(key, 0o600);
    expect(await checkCertificates({ ...files(), keyFile: key })).toEqual([]);
  });

  it("refuses a PEM path that is not a regular file, or over 1 MiB, before reading it", async () => {
    const { execFileSync } = await import("node:child_process");
    const fifo = join(dir, "fifo.crt");
    execFileSync("mkfifo", [fifo]);
    const big = join(dir, "big.crt");
    await writeFile(big, Buffer.alloc(1024 * 1024 + 1, 0x41));
    const p = await checkCertificates({ certFile: fifo, keyFile: node.keyFile, caFile: big });
    expect(p.map((x) => [x.code, x.file])).toEqual([["CERT_UNREADABLE", fifo], ["CERT_UNREADABLE", big]]);
    expect(p[0]?.message).toMatch(/not a regular file/);
    expect(p[1]?.message).toMatch(/over 1048576 bytes/);
  });
});
