import { X509Certificate as NodeCertificate, createPrivateKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { errnoCode } from "../lib/index.js";
import { PkiError } from "./errors.js";
import { reason, x509 } from "./x509.js";

/** Larger than any certificate bundle we write or read; bounds what a hostile file makes us parse. */
const MAX_PEM_BYTES = 1024 * 1024;
const MAX_CERTS = 64;
const CERT_BLOCK_RE = /-----BEGIN CERTIFICATE-----([^-]*)-----END CERTIFICATE-----/g;
const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

/** The PEM files a TLS endpoint needs, as Node's `tls` options take them. */
export interface TlsIdentity {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

export interface TlsIdentityFiles {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/** What `autonomy cert show` and `edgectl` print about a certificate. */
export interface CertSummary {
  subject_cn: string;
  issuer_cn: string;
  /** `DNS:name` and `IP:address` entries, in certificate order. */
  sans: string[];
  not_before: string;
  not_after: string;
  /** Lowercase hex SHA-256 of the DER certificate (`openssl x509 -fingerprint -sha256`, without colons). */
  sha256_fingerprint: string;
  serial: string;
  is_ca: boolean;
  /** Extended key usages by name (`serverAuth`, `clientAuth`) or OID. */
  extended_key_usage: string[];
}

/**
 * Every certificate in a PEM text, each parsed by two parsers that must both
 * accept it (@peculiar/x509 for the structure, Node's OpenSSL for the DER):
 * text outside the blocks is ignored as OpenSSL does; a truncated block, bad
 * base64 or bad DER is CERT_UNREADABLE naming `file`.
 */
export function parseCertificates(pem: string, file: string): x509.X509Certificate[] {
  if (pem.length > MAX_PEM_BYTES) throw unreadable(file, `it is over ${MAX_PEM_BYTES} bytes, not a certificate file`);
  const out: x509.X509Certificate[] = [];
  for (const m of pem.matchAll(CERT_BLOCK_RE)) {
    const b64 = (m[1] ?? "").replace(/[ \t\r\n]/g, "");
    if (!BASE64_RE.test(b64) || b64.length % 4 !== 0) throw unreadable(file, `certificate ${out.length + 1} is not valid base64`);
    const der = Buffer.from(b64, "base64");
    try {
      new NodeCertificate(der);
      const cert = new x509.X509Certificate(der);
      // Extensions and names decode lazily: decode them now, so a broken one fails here, not in a later getter.
      void cert.extensions.length;
      void cert.subjectName.toString();
      void cert.issuerName.toString();
      summarize(cert);
      out.push(cert);
    } catch (e) {
      throw unreadable(file, `certificate ${out.length + 1} is not a valid X.509 certificate (${reason(e)})`, e);
    }
    if (out.length > MAX_CERTS) throw unreadable(file, `it holds more than ${MAX_CERTS} certificates`);
  }
  if (out.length === 0) {
    const why = pem.includes("-----BEGIN CERTIFICATE-----") ? "its certificate block is truncated (no END line)" : "it has no PEM certificate (-----BEGIN CERTIFICATE-----)";
    throw unreadable(file, why);
  }
  return out;
}

/** A PEM private key (PKCS#8, or SEC1 as openssl writes it); unencrypted, since edged starts unattended. */
export function parsePrivateKey(pem: string, file: string): KeyObject {
  if (pem.length > MAX_PEM_BYTES) throw unreadable(file, `it is over ${MAX_PEM_BYTES} bytes, not a key file`);
  if (!/-----BEGIN (EC |ENCRYPTED )?PRIVATE KEY-----/.test(pem)) throw unreadable(file, "it has no PEM private key (-----BEGIN PRIVATE KEY-----)");
  if (pem.includes("ENCRYPTED PRIVATE KEY")) throw unreadable(file, "the private key is encrypted; edged needs an unencrypted key (mode 0600)");
  try {
    return createPrivateKey(pem);
  } catch (e) {
    throw unreadable(file, `the private key does not parse (${reason(e)})`, e);
  }
}

/**
 * Reads the mTLS identity of one endpoint and checks it is usable: each file
 * readable, the certificate and CA bundle parse, the key parses and belongs to
 * the certificate (CERT_KEY_MISMATCH otherwise). Expiry and issuer are judged
 * by {@link checkCertificates}, which reports instead of throwing.
 */
export async function readTlsIdentity(files: TlsIdentityFiles): Promise<TlsIdentity> {
  const [cert, key, ca] = await Promise.all([readPemFile(files.certFile), readPemFile(files.keyFile), readPemFile(files.caFile)]);
  const leaf = parseCertificates(cert.toString("utf8"), files.certFile)[0];
  parseCertificates(ca.toString("utf8"), files.caFile);
  const keyObject = parsePrivateKey(key.toString("utf8"), files.keyFile);
  if (leaf !== undefined && !keyMatches(leaf, keyObject)) {
    throw new PkiError("CERT_KEY_MISMATCH", `${files.keyFile} is not the private key of ${files.certFile}`);
  }
  return { cert, key, ca };
}

export function keyMatches(cert: x509.X509Certificate, key: KeyObject): boolean {
  try {
    return new NodeCertificate(Buffer.from(cert.rawData)).checkPrivateKey(key);
  } catch {
    return false; // a key of another type or curve than the certificate's
  }
}

/** A summary of the first certificate in `pem` (throws CERT_UNREADABLE; `file` names it in messages). */
export function certSummary(pem: string, file = "certificate"): CertSummary {
  const first = parseCertificates(pem, file)[0];
  if (first === undefined) throw unreadable(file, "no certificate");
  return summarize(first);
}

/** A summary of every certificate in `pem` (a CA bundle during a rotation holds two). */
export function certSummaries(pem: string, file = "certificate"): CertSummary[] {
  return parseCertificates(pem, file).map(summarize);
}

export function summarize(cert: x509.X509Certificate): CertSummary {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  return {
    subject_cn: cert.subjectName.getField("CN")[0] ?? "",
    issuer_cn: cert.issuerName.getField("CN")[0] ?? "",
    sans: (san?.names.items ?? []).map((n) => `${n.type === "ip" ? "IP" : n.type.toUpperCase()}:${n.value}`),
    not_before: cert.notBefore.toISOString(),
    not_after: cert.notAfter.toISOString(),
    sha256_fingerprint: new NodeCertificate(Buffer.from(cert.rawData)).fingerprint256.replace(/:/g, "").toLowerCase(),
    serial: cert.serialNumber.toLowerCase(),
    is_ca: cert.getExtension(x509.BasicConstraintsExtension)?.ca === true,
    extended_key_usage: Array.from(eku?.usages ?? [], (u) => EKU_NAMES[String(u)] ?? String(u)),
  };
}

const EKU_NAMES: Readonly<Record<string, string>> = {
  [x509.ExtendedKeyUsage.serverAuth]: "serverAuth",
  [x509.ExtendedKeyUsage.clientAuth]: "clientAuth",
  [x509.ExtendedKeyUsage.codeSigning]: "codeSigning",
  [x509.ExtendedKeyUsage.emailProtection]: "emailProtection",
  [x509.ExtendedKeyUsage.timeStamping]: "timeStamping",
  [x509.ExtendedKeyUsage.ocspSigning]: "OCSPSigning",
};

/**
 * A PEM file's bytes; a missing, unreadable, non-regular (a FIFO or a device
 * would block or never end) or oversized file is CERT_UNREADABLE naming it.
 * Type and size are checked on the open descriptor BEFORE reading, and the
 * read itself is bounded (a file growing meanwhile is refused, not slurped).
 */
export async function readPemFile(file: string): Promise<Buffer> {
  return (await readPemFileWithMode(file)).bytes;
}

/** {@link readPemFile} plus the file's permission bits (a private key must not be readable by others). */
export async function readPemFileWithMode(file: string): Promise<{ bytes: Buffer; mode: number }> {
  let fh;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw unreadable(file, `cannot read it (${errnoCode(e) ?? reason(e)})`, e);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw unreadable(file, "it is not a regular file");
    if (st.size > MAX_PEM_BYTES) throw unreadable(file, `it is over ${MAX_PEM_BYTES} bytes, not a PEM file`);
    const buf = Buffer.alloc(MAX_PEM_BYTES + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n > MAX_PEM_BYTES) throw unreadable(file, `it is over ${MAX_PEM_BYTES} bytes, not a PEM file`);
    }
    return { bytes: Buffer.from(buf.subarray(0, n)), mode: st.mode & 0o7777 };
  } catch (e) {
    if (e instanceof PkiError) throw e;
    throw unreadable(file, `cannot read it (${errnoCode(e) ?? reason(e)})`, e);
  } finally {
    await fh.close();
  }
}

/** Permission bits a private key file must not have: any access by group or others. */
export const KEY_MODE_FORBIDDEN = 0o077;

/** The problem with a key file's mode, or undefined when only its owner can use it. */
export function insecureKeyMode(file: string, mode: number): string | undefined {
  if ((mode & KEY_MODE_FORBIDDEN) === 0) return undefined;
  return `${file}: the private key is accessible to group or others (mode ${(mode & 0o777).toString(8).padStart(4, "0")}); run \`chmod 600 ${file}\``;
}

function unreadable(file: string, why: string, cause?: unknown): PkiError {
  return new PkiError("CERT_UNREADABLE", `${file}: ${why}`, { details: { file }, ...(cause === undefined ? {} : { cause }) });
}
