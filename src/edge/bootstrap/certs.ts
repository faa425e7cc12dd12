import { checkCertificates } from "../../pki/index.js";
import type { CertProblem } from "../../pki/index.js";
import type { EdgeConfig } from "../config/schema.js";
import { EdgeError } from "../errors.js";

/** A certificate or CA ending within this many days fails the precheck (exit 3): the original's rule. */
export const CERT_MIN_VALID_DAYS = 7;

/** The precheck's code for a pki problem; mixed problems are CERT_UNREADABLE. */
const EDGE_CODE: Partial<Record<CertProblem["code"], "CERT_EXPIRING" | "CERT_NOT_YET_VALID" | "CERT_KEY_INSECURE" | "CERT_NAME_MISMATCH">> = {
  CERT_EXPIRING: "CERT_EXPIRING",
  CERT_EXPIRED: "CERT_EXPIRING",
  CERT_NOT_YET_VALID: "CERT_NOT_YET_VALID",
  CERT_KEY_INSECURE: "CERT_KEY_INSECURE",
  CERT_NAME_MISMATCH: "CERT_NAME_MISMATCH",
};

/**
 * The precheck's mTLS check, through the pki domain: the certificate, its key
 * and the CA are readable, the key is the certificate's, the CA issued it, and
 * neither is expired, not yet valid, or expiring within 7 days of `now`; the
 * key is its owner's only; the certificate names `nodeId` (CN or DNS SAN).
 * Every problem is named in one error, whose code is the problems' own when
 * they are all of one kind (CERT_EXPIRING, CERT_NOT_YET_VALID: the clock,
 * CERT_KEY_INSECURE, CERT_NAME_MISMATCH), else CERT_UNREADABLE.
 */
export async function checkTransportCerts(t: EdgeConfig["transport"], now: number, nodeId?: string): Promise<void> {
  const problems = await checkCertificates({ certFile: t.certFile, keyFile: t.keyFile, caFile: t.caFile, now, minValidDays: CERT_MIN_VALID_DAYS, ...(nodeId === undefined ? {} : { expectedName: nodeId }) });
  if (problems.length === 0) return;
  const codes = new Set(problems.map((p) => EDGE_CODE[p.code] ?? "CERT_UNREADABLE"));
  const code = codes.size === 1 ? [...codes][0] ?? "CERT_UNREADABLE" : "CERT_UNREADABLE";
  throw new EdgeError(code, problems.map((p) => `${p.code}: ${p.message}`).join("; "), { details: { problems } });
}
