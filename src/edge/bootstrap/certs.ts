import { checkCertificates } from "../../pki/index.js";
import type { CertProblem } from "../../pki/index.js";
import type { EdgeConfig } from "../config/schema.js";
import { EdgeError } from "../errors.js";

/** A certificate or CA ending within this many days fails the precheck (exit 3): the original's rule. */
export const CERT_MIN_VALID_DAYS = 7;

const EXPIRY: ReadonlySet<CertProblem["code"]> = new Set(["CERT_EXPIRING", "CERT_EXPIRED"]);

/**
 * The precheck's mTLS check, through the pki domain: the certificate, its key
 * and the CA are readable, the key is the certificate's, the CA issued it, and
 * neither is expired, not yet valid, or expiring within 7 days of `now`. Every
 * problem is named in one error (CERT_EXPIRING when only time is wrong).
 */
export async function checkTransportCerts(t: EdgeConfig["transport"], now: number): Promise<void> {
  const problems = await checkCertificates({ certFile: t.certFile, keyFile: t.keyFile, caFile: t.caFile, now, minValidDays: CERT_MIN_VALID_DAYS });
  if (problems.length === 0) return;
  const code = problems.every((p) => EXPIRY.has(p.code)) ? "CERT_EXPIRING" : "CERT_UNREADABLE";
  throw new EdgeError(code, problems.map((p) => `${p.code}: ${p.message}`).join("; "), { details: { problems } });
}
