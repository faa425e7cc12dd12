import { MediaTypes, OciError, listReferrers, parseManifest, childDescriptors, sidecarTag } from "../oci/index.js";
import type { Descriptor, OciRepository } from "../oci/index.js";
import { parseLock, verifyLock } from "../lock/index.js";
import type { ActivationLock } from "../lock/index.js";
import { VerificationError } from "../sign/index.js";
import { safeEqual, sha256Digest } from "../lib/index.js";
import { verifySubjectSignature } from "./verify-signature.js";
import type { TrustOptions, VerifiedSignature } from "./verify-signature.js";

export interface VerifyReleaseOptions extends TrustOptions {
  requireLock: boolean;
  requirePolicy: boolean;
  /** The tag the artifact was addressed by, to find the original's sidecar tags. */
  tag?: string;
}

export interface VerifyStep {
  step: string;
  ok: boolean;
  detail: string;
}

export interface VerifiedAttachment {
  manifest: string;
  blob: string;
  signature: VerifiedSignature;
}

export interface VerifyReleaseReport {
  artifact: { digest: string; mediaType: string; signature: VerifiedSignature };
  lock?: VerifiedAttachment & { lock: ActivationLock };
  policy?: VerifiedAttachment & { size: number };
  steps: VerifyStep[];
}

/**
 * Verifies a release fail-closed, in order:
 *   1. the artifact's signature (trusted key, this exact digest, fresh);
 *   2. every blob under the artifact manifest matches its digest;
 *   3. the attached lock: signed, schema-valid, fingerprint recomputes, and it
 *      names this artifact's live digest;
 *   4. the attached policy bundle: signed, and its SHA-256 is the one the lock names.
 * Any failure throws a VerificationError (exit 4) naming the artifact and the
 * expected and actual digests. `repo` must address the artifact by `target`.
 */
export async function verifyRelease(repo: OciRepository, target: string, opts: VerifyReleaseOptions): Promise<VerifyReleaseReport> {
  const steps: VerifyStep[] = [];
  const manifest = await repo.getManifest(target);
  const artifact = { digest: manifest.digest, mediaType: manifest.mediaType };
  const signature = await verifySubjectSignature(repo, artifact.digest, "artifact", opts);
  steps.push({ step: "artifact-signature", ok: true, detail: `signed ${signature.signedAt} (${signature.source})` });
  const blobs = await verifyTree(repo, manifest.bytes, manifest.mediaType);
  steps.push({ step: "artifact-digests", ok: true, detail: `manifest and ${blobs} blobs match their digests` });
  const report: VerifyReleaseReport = { artifact: { ...artifact, signature }, steps };

  const lock = await verifyAttachment(repo, artifact.digest, MediaTypes.lock, "lock", opts);
  if (lock === undefined) {
    if (opts.requireLock) throw missing("LOCK_MISSING", "activation lock", artifact.digest, "attach one: `autonomy oci attach REF autonomy.lock.json --artifact-type application/vnd.autonomyops.lock.v1+json`, then sign");
    steps.push({ step: "lock", ok: true, detail: "no lock attached (not required)" });
  } else {
    const parsed = parseLock(lock.data);
    await verifyLock(parsed);
    if (!safeEqual(parsed.agent_artifact.digest, artifact.digest)) {
      throw new VerificationError("ARTIFACT_DIGEST_MISMATCH", `the lock pins agent_artifact.digest ${parsed.agent_artifact.digest} but the live artifact is ${artifact.digest}`,
        "the artifact was replaced after the lock was made; do not activate it. Re-create the lock for the intended image", { details: { artifact: "artifact", expected: parsed.agent_artifact.digest, actual: artifact.digest } });
    }
    steps.push({ step: "lock", ok: true, detail: `fingerprint ${parsed.behavioral_fingerprint} recomputed; pins this artifact` });
    report.lock = { manifest: lock.manifest, blob: lock.blob, signature: lock.signature, lock: parsed };
  }

  const policy = await verifyAttachment(repo, artifact.digest, MediaTypes.policyBundle, "policy bundle", opts);
  if (policy === undefined) {
    if (opts.requirePolicy) throw missing("POLICY_MISSING", "policy bundle", artifact.digest, "attach one: `autonomy oci attach REF bundle.tar.gz --artifact-type application/vnd.autonomyops.policy-bundle.v1+tar`, then sign");
    steps.push({ step: "policy", ok: true, detail: "no policy bundle attached (not required)" });
  } else {
    const actual = sha256Digest(policy.data);
    const expected = report.lock?.lock.policy_bundle.digest;
    if (expected !== undefined && !safeEqual(expected, actual)) {
      throw new VerificationError("POLICY_DIGEST_MISMATCH", `the policy bundle attached to ${artifact.digest} has SHA-256 ${actual} but the lock names ${expected}`,
        "the bundle was swapped or the lock is stale; do not activate. Attach the bundle the lock names, or re-create the lock", { details: { artifact: "policy bundle", expected, actual } });
    }
    steps.push({ step: "policy", ok: true, detail: expected === undefined ? `signed bundle ${actual} (no lock to bind it)` : `bundle ${actual} is the one the lock names` });
    report.policy = { manifest: policy.manifest, blob: policy.blob, signature: policy.signature, size: policy.data.byteLength };
  }
  return report;
}

/** Fetches every blob the manifest names (recursively for an index); each read verifies digest and size. */
async function verifyTree(repo: OciRepository, bytes: Uint8Array, mediaType: string): Promise<number> {
  const parsed = parseManifest(bytes, mediaType);
  let n = 0;
  for (const d of childDescriptors(parsed)) {
    if (parsed.kind === "index") {
      const child = await repo.getManifest(d.digest);
      n += await verifyTree(repo, child.bytes, child.mediaType);
    } else {
      // Streamed and hashed, not held: a multi-GB model layer costs one chunk of memory.
      await wrapTamper(repo.verifyBlob(d.digest, { expectedSize: d.size }), d);
      n += 1;
    }
  }
  return n;
}

async function wrapTamper<T>(p: Promise<T>, d: Descriptor): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof OciError && (e.code === "OCI_DIGEST_MISMATCH" || e.code === "OCI_SIZE_MISMATCH")) {
      throw new VerificationError("BLOB_DIGEST_MISMATCH", `blob ${d.digest} (${d.mediaType}) does not match its digest or size: ${e.message}`,
        "the content was tampered with or truncated; do not activate it, re-copy from a trusted source", { details: tamperDetails(d, e) });
    }
    throw e;
  }
}

/** Digest mismatches carry the two digests; size mismatches the two sizes, under their own names. */
function tamperDetails(d: Descriptor, e: OciError): Record<string, unknown> {
  if (e.code === "OCI_SIZE_MISMATCH") return { digest: d.digest, expected: d.digest, expectedSize: e.details.expected, actualSize: e.details.actual };
  return { digest: d.digest, expected: d.digest, actual: e.details.actual };
}

interface Attachment {
  manifest: string;
  blob: string;
  data: Uint8Array;
  signature: VerifiedSignature;
}

/**
 * Finds the attachments of one type, verifies each one's signature and blob,
 * and returns the single signed one. Unsigned candidates are ignored when a
 * signed one exists (anyone can attach); two different signed ones are refused.
 */
async function verifyAttachment(repo: OciRepository, subject: string, artifactType: string, what: string, opts: VerifyReleaseOptions): Promise<Attachment | undefined> {
  const candidates = await findAttachments(repo, subject, artifactType, opts.tag);
  if (candidates.length === 0) return undefined;
  const verified: Attachment[] = [];
  let firstError: unknown;
  for (const manifestDigest of candidates) {
    try {
      const signature = await verifySubjectSignature(repo, manifestDigest, what, opts);
      const m = await repo.getManifest(manifestDigest);
      const parsed = parseManifest(m.bytes, m.mediaType);
      const layer = parsed.kind === "manifest" ? parsed.value.layers.find((l) => l.mediaType === artifactType) ?? parsed.value.layers[0] : undefined;
      if (layer === undefined) throw new VerificationError("ATTACHMENT_INVALID", `the ${what} manifest ${manifestDigest} has no content layer`, "re-attach the file");
      if (parsed.value.subject?.digest !== subject) {
        // A sidecar tag can point anywhere; only an attachment whose signed manifest names this artifact counts.
        throw new VerificationError("ATTACHMENT_INVALID", `the ${what} manifest ${manifestDigest} refers to ${parsed.value.subject?.digest ?? "nothing"}, not ${subject}`,
          "re-attach the file to this artifact", { details: { expected: subject, actual: parsed.value.subject?.digest ?? null } });
      }
      const data = await wrapTamper(repo.getBlob(layer.digest, { expectedSize: layer.size }), layer);
      verified.push({ manifest: manifestDigest, blob: layer.digest, data, signature });
    } catch (e) {
      firstError ??= e;
    }
  }
  if (verified.length === 0) throw firstError;
  const distinct = new Set(verified.map((v) => v.blob));
  if (distinct.size > 1) {
    throw new VerificationError("ATTACHMENT_AMBIGUOUS", `${distinct.size} different signed ${what}s are attached to ${subject}`,
      "a release must have exactly one signed lock and one signed bundle; remove the extra or publish a new tag", { details: { candidates: [...distinct] } });
  }
  return verified[0];
}

async function findAttachments(repo: OciRepository, subject: string, artifactType: string, tag?: string): Promise<string[]> {
  const found = (await listReferrers(repo, subject, artifactType, { includeFallbackTag: true })).map((r) => r.digest);
  const side = tag === undefined ? undefined : sidecarTag(artifactType, tag);
  if (side !== undefined) {
    try {
      const d = (await repo.resolve(side)).digest;
      if (!found.includes(d)) found.push(d);
    } catch (e) {
      if (!(e instanceof OciError && e.code === "OCI_NOT_FOUND")) throw e;
    }
  }
  return found;
}

function missing(code: "LOCK_MISSING" | "POLICY_MISSING", what: string, digest: string, hint: string): VerificationError {
  return new VerificationError(code, `no ${what} is attached to ${digest}`, hint, { details: { artifact: what, digest } });
}
