import type { KeyObject } from "node:crypto";
import type { OciRepository, ReferrerSource } from "../oci/index.js";
import { SignError, VerificationError, checkFreshness, parseSimpleSigningPayload, verifyPayloadSignature } from "../sign/index.js";
import { collectSignatures } from "./signatures.js";

export interface TrustOptions {
  key: KeyObject;
  /** Oldest acceptable signature, from the signed payload's `autonomy.signed-at`. */
  maxAgeMs: number;
  now: Date;
}

export interface VerifiedSignature {
  subject: string;
  signedAt: string;
  signatureManifest: string;
  source: ReferrerSource;
  /** The signed payload's `optional` annotations (release sequence, rollback flag, …). */
  optional: Readonly<Record<string, unknown>>;
}

/**
 * Checks that `subjectDigest` carries at least one signature that verifies
 * under the trusted key, signs exactly this digest, and is fresh. Of several
 * valid signatures the most recently signed speaks (its annotations, such as
 * the release sequence, are what the caller sees). When none is valid, throws
 * the most telling reason: stale beats wrong digest beats invalid.
 */
export async function verifySubjectSignature(repo: OciRepository, subjectDigest: string, what: string, trust: TrustOptions): Promise<VerifiedSignature> {
  const candidates = await collectSignatures(repo, subjectDigest);
  if (candidates.length === 0) {
    throw new VerificationError("SIGNATURE_MISSING", `no signature found for the ${what} ${subjectDigest} in ${repo.location}`,
      "sign it with `autonomy sign REF --key KEY.key`, or check that the signature was copied along (`autonomy oci copy` copies referrers)", { details: { artifact: what, digest: subjectDigest } });
  }
  const failures: VerificationError[] = [];
  const valid: (VerifiedSignature & { at: Date })[] = [];
  for (const c of candidates) {
    if (!verifyPayloadSignature(trust.key, c.payload, c.signature)) {
      failures.push(new VerificationError("SIGNATURE_INVALID", `the ${what} ${subjectDigest} has no signature valid for the trusted key (tampered payload or a different signer)`,
        "check you pass the right public key with --key; re-sign with the matching private key if the release is genuine", { details: { artifact: what, digest: subjectDigest, signature: c.manifestDigest } }));
      continue;
    }
    let payload;
    try {
      payload = parseSimpleSigningPayload(c.payload);
    } catch (e) {
      if (!(e instanceof SignError)) throw e;
      failures.push(new VerificationError("SIGNATURE_INVALID", `a signature on the ${what} carries a malformed payload: ${e.message}`, "re-sign the artifact", { details: { artifact: what, digest: subjectDigest } }));
      continue;
    }
    if (payload.manifestDigest !== subjectDigest) {
      failures.push(new VerificationError("SIGNATURE_DIGEST_MISMATCH", `a signature attached to the ${what} signs another digest: expected ${subjectDigest}, signed ${payload.manifestDigest}`,
        "a signature was moved from another artifact; sign this artifact itself", { details: { artifact: what, expected: subjectDigest, actual: payload.manifestDigest } }));
      continue;
    }
    let at: Date;
    try {
      at = checkFreshness(payload.signedAt, { maxAgeMs: trust.maxAgeMs, now: trust.now });
    } catch (e) {
      if (e instanceof VerificationError) {
        failures.push(e);
        continue;
      }
      throw e;
    }
    valid.push({ subject: subjectDigest, signedAt: payload.signedAt ?? at.toISOString(), signatureManifest: c.manifestDigest, source: c.source, optional: payload.optional, at });
  }
  if (valid.length === 0) throw mostTelling(failures);
  const newest = valid.reduce((a, b) => (b.at > a.at ? b : a));
  const { at: _at, ...result } = newest;
  return result;
}

const RANK: Record<string, number> = { SIGNATURE_STALE: 3, SIGNATURE_TIME_INVALID: 2, SIGNATURE_DIGEST_MISMATCH: 1 };

function mostTelling(failures: VerificationError[]): VerificationError {
  return [...failures].sort((a, b) => (RANK[b.code] ?? 0) - (RANK[a.code] ?? 0))[0] as VerificationError;
}
