import { X509Certificate, createPrivateKey } from "node:crypto";
import { readFile } from "node:fs/promises";
import { errnoCode } from "../../lib/index.js";
import type { EdgeConfig } from "../config/schema.js";
import { EdgeError } from "../errors.js";

/** A certificate expiring within this window fails the precheck (exit 3): the original's rule. */
export const CERT_EXPIRY_WINDOW_MS = 7 * 24 * 3600 * 1000;

export interface CertCheck {
  cert_not_after: string;
  ca_not_after: string;
}

async function readPem(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new EdgeError("CERT_UNREADABLE", `cannot read the ${what} ${path}: ${errnoCode(e) ?? String(e)}`, { cause: e });
  }
}

function parseCert(pem: Buffer, path: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (e) {
    throw new EdgeError("CERT_UNREADABLE", `the ${what} ${path} is not a PEM certificate`, { cause: e });
  }
}

function checkWindow(c: X509Certificate, path: string, what: string, now: number): void {
  const notBefore = Date.parse(c.validFrom);
  const notAfter = Date.parse(c.validTo);
  if (notBefore > now) throw new EdgeError("CERT_UNREADABLE", `the ${what} ${path} is not valid before ${new Date(notBefore).toISOString()}`);
  if (notAfter - now < CERT_EXPIRY_WINDOW_MS) {
    const verb = notAfter <= now ? "expired" : "expires";
    throw new EdgeError("CERT_EXPIRING", `the ${what} ${path} ${verb} at ${new Date(notAfter).toISOString()}, within ${CERT_EXPIRY_WINDOW_MS / 86_400_000} days of now`);
  }
}

/**
 * Interim mTLS identity check (until the pki domain's check lands): the
 * certificate, its key and the CA are readable, the key is the certificate's,
 * the CA issued it, and neither expires within 7 days of `now`.
 */
export async function checkTransportCerts(t: EdgeConfig["transport"], now: number): Promise<CertCheck> {
  const cert = parseCert(await readPem(t.certFile, "certificate"), t.certFile, "certificate");
  const ca = parseCert(await readPem(t.caFile, "CA certificate"), t.caFile, "CA certificate");
  const keyPem = await readPem(t.keyFile, "private key");
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    throw new EdgeError("CERT_UNREADABLE", `the private key ${t.keyFile} is not a readable PEM key`, { cause: e });
  }
  if (!cert.checkPrivateKey(key)) throw new EdgeError("CERT_UNREADABLE", `the private key ${t.keyFile} is not the key of ${t.certFile}`);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw new EdgeError("CERT_UNREADABLE", `${t.certFile} was not issued by the CA in ${t.caFile}`);
  checkWindow(cert, t.certFile, "certificate", now);
  checkWindow(ca, t.caFile, "CA certificate", now);
  return { cert_not_after: new Date(cert.validTo).toISOString(), ca_not_after: new Date(ca.validTo).toISOString() };
}
