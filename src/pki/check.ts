import { X509Certificate as NodeCertificate } from "node:crypto";
import { AutonomyError } from "../lib/index.js";
import { insecureKeyMode, keyMatches, parseCertificates, parsePrivateKey, readPemFile, readPemFileWithMode } from "./read.js";
import type { TlsIdentityFiles } from "./read.js";
import { certIdentity } from "./identity.js";
import type { x509 } from "./x509.js";

const DAY_MS = 24 * 3600 * 1000;

/** What can be wrong with an endpoint's mTLS files (`edged precheck` exits 3 on any of them). */
export type CertProblemCode =
  | "CERT_UNREADABLE" | "CERT_KEY_MISMATCH" | "CERT_NOT_ISSUED_BY_CA"
  | "CERT_EXPIRED" | "CERT_NOT_YET_VALID" | "CERT_EXPIRING"
  | "CERT_KEY_INSECURE" | "CERT_NAME_MISMATCH";

export interface CertProblem {
  code: CertProblemCode;
  /** The file the problem is in (cert_file, key_file or ca_file). */
  file: string;
  message: string;
}

export interface CheckCertificatesOptions extends TlsIdentityFiles {
  /** The instant judged (default: now). */
  now?: Date | number;
  /** A certificate (or CA) ending within this many days is a problem (default 7, the original's precheck). */
  minValidDays?: number;
  /** The name this endpoint must be (a node's [node] id): the certificate's identity (its CN, see identity.ts). */
  expectedName?: string;
}

/**
 * Every problem with an endpoint's certificate, key and CA bundle at `now`;
 * an empty list means a relay link can be built with them. Reports rather than
 * throws, so a precheck shows all problems at once.
 */
export async function checkCertificates(opts: CheckCertificatesOptions): Promise<CertProblem[]> {
  const now = typeof opts.now === "number" ? opts.now : (opts.now ?? new Date()).getTime();
  const minValidMs = (opts.minValidDays ?? 7) * DAY_MS;
  const problems: CertProblem[] = [];
  const leaf = await attempt(problems, opts.certFile, async () => parseCertificates((await readPemFile(opts.certFile)).toString("utf8"), opts.certFile)[0]);
  const key = await attempt(problems, opts.keyFile, async () => {
    const { bytes, mode } = await readPemFileWithMode(opts.keyFile);
    const insecure = insecureKeyMode(opts.keyFile, mode);
    if (insecure !== undefined) problems.push({ code: "CERT_KEY_INSECURE", file: opts.keyFile, message: insecure });
    return parsePrivateKey(bytes.toString("utf8"), opts.keyFile);
  });
  const cas = await attempt(problems, opts.caFile, async () => parseCertificates((await readPemFile(opts.caFile)).toString("utf8"), opts.caFile));
  if (leaf !== undefined && key !== undefined && !keyMatches(leaf, key)) {
    problems.push({ code: "CERT_KEY_MISMATCH", file: opts.keyFile, message: `${opts.keyFile} is not the private key of ${opts.certFile}` });
  }
  if (leaf !== undefined && cas !== undefined && !cas.some((ca) => issuedBy(leaf, ca))) {
    problems.push({ code: "CERT_NOT_ISSUED_BY_CA", file: opts.certFile, message: `${opts.certFile} (CN=${cn(leaf)}) is not signed by any CA in ${opts.caFile}` });
  }
  if (leaf !== undefined && opts.expectedName !== undefined) problems.push(...nameProblems(leaf, opts.certFile, opts.expectedName));
  if (leaf !== undefined) problems.push(...validity(leaf, opts.certFile, "certificate", now, minValidMs));
  for (const ca of cas ?? []) problems.push(...validity(ca, opts.caFile, "CA certificate", now, minValidMs));
  return problems;
}

/** True when `ca` names and signed `cert` (issuer DN = CA subject DN, and the signature verifies with its key). */
export function issuedBy(cert: x509.X509Certificate, ca: x509.X509Certificate): boolean {
  try {
    const leaf = new NodeCertificate(Buffer.from(cert.rawData));
    const issuer = new NodeCertificate(Buffer.from(ca.rawData));
    return leaf.checkIssued(issuer) && leaf.verify(issuer.publicKey);
  } catch {
    return false; // a key OpenSSL cannot verify with: not the issuer
  }
}

function validity(cert: x509.X509Certificate, file: string, what: string, now: number, minValidMs: number): CertProblem[] {
  const end = cert.notAfter.getTime();
  const name = `${what} CN=${cn(cert)} in ${file}`;
  // Almost always this node's clock, not the certificate (an RTC reset after an OS replacement): say so.
  if (now < cert.notBefore.getTime()) return [{ code: "CERT_NOT_YET_VALID", file, message: `${name} is not valid before ${cert.notBefore.toISOString()}, and this node's clock says ${new Date(now).toISOString()}: if the clock is wrong, fix the system clock (NTP, timedatectl) rather than the certificate` }];
  if (now >= end) return [{ code: "CERT_EXPIRED", file, message: `${name} expired ${cert.notAfter.toISOString()}` }];
  if (end - now < minValidMs) {
    const days = Math.floor((end - now) / DAY_MS);
    return [{ code: "CERT_EXPIRING", file, message: `${name} expires ${cert.notAfter.toISOString()} (in ${days} day${days === 1 ? "" : "s"}, under ${minValidMs / DAY_MS})` }];
  }
  return [];
}

/** The certificate must be this node's by the one identity rule peers apply (identity.ts): its CN is the id; SANs do not count. */
function nameProblems(cert: x509.X509Certificate, file: string, expected: string): CertProblem[] {
  const identity = certIdentity(cert.subjectName.getField("CN"));
  if (!identity.ok) return [{ code: "CERT_NAME_MISMATCH", file, message: `${file}: ${identity.reason}; this node is ${JSON.stringify(expected)}` }];
  if (identity.id === expected) return [];
  return [{ code: "CERT_NAME_MISMATCH", file, message: `${file} is issued to ${JSON.stringify(identity.id)} (its CN), not to this node ${JSON.stringify(expected)}` }];
}

function cn(cert: x509.X509Certificate): string {
  return cert.subjectName.getField("CN")[0] ?? "?";
}

async function attempt<T>(problems: CertProblem[], file: string, read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (e) {
    if (!(e instanceof AutonomyError)) throw e;
    problems.push({ code: "CERT_UNREADABLE", file, message: e.message });
    return undefined;
  }
}
