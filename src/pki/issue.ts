import { createPrivateKey } from "node:crypto";
import { access, open } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fsyncDir, systemClock, writeFileAtomic } from "../lib/index.js";
import type { Clock } from "../lib/index.js";
import { PkiError } from "./errors.js";
import { checkNodeName, sanList } from "./names.js";
import { insecureKeyMode, keyMatches, parseCertificates, readPemFileWithMode, summarize } from "./read.js";
import type { CertSummary } from "./read.js";
import type { CryptoKey } from "./x509.js";
import { SIGNING_ALGORITHM, generateP256, importSigningKey, privateKeyPem, randomSerial, reason, x509 } from "./x509.js";

const DAY_MS = 24 * 3600 * 1000;
/** Certificates start 5 minutes in the past so a peer whose clock lags a little still accepts a fresh one. */
const BACKDATE_MS = 5 * 60 * 1000;
export const CA_CERT_FILE = "ca.crt";
export const CA_KEY_FILE = "ca.key";
/** One JSON line per certificate the CA issued: what a later `cert revoke --name` and `cert list` read. */
export const ISSUED_LOG_FILE = "issued.jsonl";
const MAX_DAYS = 100 * 365;

/** Where a certificate and its private key were written. */
export interface WrittenIdentity {
  certFile: string;
  keyFile: string;
}

export interface InitCaOptions {
  outDir: string;
  /** The CA's common name (default "AutonomyOps fleet CA"). */
  name?: string;
  /** Validity in days (default 3650). */
  days?: number;
  clock?: Clock;
  /** Replace an existing ca.crt / ca.key (every certificate it issued stops being trusted). */
  force?: boolean;
}

/**
 * Creates the fleet CA: an ECDSA P-256 key and a self-signed certificate with
 * basicConstraints CA:true, pathlen 0 (it signs node certificates only, never
 * another CA) and keyUsage keyCertSign + cRLSign (cRLSign so revocation can be
 * added without a new CA). Writes `ca.key` (PKCS#8, 0600) then `ca.crt`, each
 * durably. Refuses (CA_EXISTS) to replace an existing CA unless `force`.
 */
export async function initCa(opts: InitCaOptions): Promise<WrittenIdentity> {
  const outDir = resolve(opts.outDir);
  const certFile = join(outDir, CA_CERT_FILE);
  const keyFile = join(outDir, CA_KEY_FILE);
  if (opts.force !== true) {
    for (const f of [certFile, keyFile]) {
      if (await exists(f)) throw new PkiError("CA_EXISTS", `${f} already exists; refusing to replace the fleet CA`, { details: { file: f } });
    }
  }
  const name = opts.name ?? "AutonomyOps fleet CA";
  if (name.length === 0 || name.length > 64 || [...name].some((c) => c < " " || c === "\u007f")) {
    throw new PkiError("CERT_NAME_INVALID", "the CA name must be 1-64 printable characters");
  }
  const now = (opts.clock ?? systemClock).now();
  const notBefore = new Date(now - BACKDATE_MS);
  const notAfter = new Date(now + days(opts.days, 3650) * DAY_MS);
  const keys = await generateP256();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [name] }],
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING_ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  // Key first: a crash in between leaves a key without a certificate (re-run init), never a CA cert whose key is lost.
  await writeFileAtomic(keyFile, await privateKeyPem(keys.privateKey), 0o600);
  await writeFileAtomic(certFile, cert.toString("pem") + "\n", 0o644);
  return { certFile, keyFile };
}

export interface IssueCertOptions {
  /** The directory with ca.crt and ca.key. */
  caDir: string;
  /** The node name: CN, first DNS SAN, and the file names `<name>.crt` / `<name>.key`. */
  name: string;
  /** Validity in days from now (default 90). Ignored when `notAfter` is given. */
  days?: number;
  /** Where to write (default: caDir). */
  outDir?: string;
  /** Extra SANs: IP addresses or DNS names (e.g. "127.0.0.1", "localhost"). */
  sans?: readonly string[];
  clock?: Clock;
  /** Exact validity window, for tests that need an expired or not-yet-valid certificate. */
  notBefore?: Date;
  notAfter?: Date;
}

/**
 * Issues a node certificate signed by the fleet CA: ECDSA P-256, CN and DNS SAN
 * = name (+ `sans`), EKU serverAuth + clientAuth (one certificate serves both
 * ends of a mutual-TLS relay link), keyUsage digitalSignature, a random 16-byte
 * serial. Writes `<name>.key` (PKCS#8, 0600) then `<name>.crt`; an existing pair
 * of that name is replaced (re-issuing is how a node renews today).
 */
export async function issueCert(opts: IssueCertOptions): Promise<WrittenIdentity> {
  const name = checkNodeName(opts.name);
  const sans = sanList(name, opts.sans);
  const caDir = resolve(opts.caDir);
  const ca = await loadCa(caDir);
  const now = (opts.clock ?? systemClock).now();
  const notBefore = opts.notBefore ?? new Date(now - BACKDATE_MS);
  const notAfter = opts.notAfter ?? new Date(now + days(opts.days, 90) * DAY_MS);
  if (notAfter.getTime() <= notBefore.getTime()) throw new PkiError("CERT_VALIDITY_INVALID", "notAfter must be after notBefore");
  if (notAfter.getTime() > ca.cert.notAfter.getTime()) {
    throw new PkiError("CERT_VALIDITY_INVALID", `the certificate would end ${notAfter.toISOString()}, after its CA (${ca.cert.notAfter.toISOString()})`);
  }
  const keys = await generateP256();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [name] }],
    issuer: ca.cert.subjectName.toJSON(),
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension(sans, false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey),
    ],
  });
  const outDir = resolve(opts.outDir ?? caDir);
  const certFile = join(outDir, `${name}.crt`);
  const keyFile = join(outDir, `${name}.key`);
  // `--name ca` in the CA directory would replace the fleet CA's own key and certificate: unrecoverable.
  if ([certFile, keyFile].some((f) => f === join(caDir, CA_CERT_FILE) || f === join(caDir, CA_KEY_FILE))) throw new PkiError("CERT_NAME_INVALID", `node name ${JSON.stringify(name)} would overwrite the fleet CA's ${CA_CERT_FILE} and ${CA_KEY_FILE} in ${caDir}: choose another name, or write elsewhere with --out`);
  // Logged before the files exist: a crash in between leaves a logged serial that was never used
  // (harmless to revoke), never a certificate in use that the CA cannot name.
  await appendIssued(caDir, { ...summarize(cert), cert_file: certFile, issued_at: new Date(now).toISOString() });
  await writeFileAtomic(keyFile, await privateKeyPem(keys.privateKey), 0o600);
  await writeFileAtomic(certFile, cert.toString("pem") + "\n", 0o644);
  return { certFile, keyFile };
}

async function loadCa(caDir: string): Promise<{ cert: x509.X509Certificate; key: CryptoKey }> {
  const certFile = join(caDir, CA_CERT_FILE);
  const keyFile = join(caDir, CA_KEY_FILE);
  const [certPem, { text: keyPem, mode: keyMode }] = await Promise.all([readCaFile(certFile).then((r) => r.text), readCaFile(keyFile)]);
  let cert: x509.X509Certificate;
  try {
    const first = parseCertificates(certPem, certFile)[0];
    if (first === undefined) throw new Error("no certificate");
    cert = first;
  } catch (e) {
    throw new PkiError("CA_UNREADABLE", `${certFile} is not a CA certificate: ${reason(e)}`, { cause: e });
  }
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  if (bc?.ca !== true) throw new PkiError("CA_UNREADABLE", `${certFile} is not a CA certificate (basicConstraints CA:true missing)`);
  const insecure = insecureKeyMode(keyFile, keyMode);
  if (insecure !== undefined) throw new PkiError("CERT_KEY_INSECURE", `${insecure}: the fleet CA key signs every node's certificate`);
  const key = await importSigningKey(keyPem, keyFile);
  // The key must be the one the certificate names, or every certificate we issue would fail to verify.
  if (!keyMatches(cert, createPrivateKey(keyPem))) {
    throw new PkiError("CERT_KEY_MISMATCH", `${keyFile} is not the private key of ${certFile}`);
  }
  return { cert, key };
}

/** One line of the CA's issued-certificate log. */
export interface IssuedRecord extends CertSummary {
  cert_file: string;
  issued_at: string;
}

/** Appends one line durably (fsync of the file, and of the directory when the log is new). */
async function appendIssued(caDir: string, record: IssuedRecord): Promise<void> {
  const file = join(caDir, ISSUED_LOG_FILE);
  const created = !(await exists(file));
  const fh = await open(file, "a", 0o644);
  try {
    await fh.appendFile(`${JSON.stringify(record)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (created) await fsyncDir(caDir);
}

/** A CA file, bounded (readPemFileWithMode), with its mode (ca.key must be its owner's only). */
async function readCaFile(file: string): Promise<{ text: string; mode: number }> {
  try {
    const r = await readPemFileWithMode(file);
    return { text: r.bytes.toString("utf8"), mode: r.mode };
  } catch (e) {
    throw new PkiError("CA_UNREADABLE", `cannot read ${file}: ${e instanceof PkiError ? e.message : reason(e)}`, { cause: e });
  }
}

function days(v: number | undefined, dflt: number): number {
  const d = v ?? dflt;
  if (!Number.isInteger(d) || d < 1 || d > MAX_DAYS) throw new PkiError("CERT_VALIDITY_INVALID", `days must be a whole number from 1 to ${MAX_DAYS}, not ${String(v)}`);
  return d;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}
