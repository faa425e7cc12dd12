import { MediaTypes, OciError, parseManifest, childDescriptors, readReferrerSources } from "../oci/index.js";
import type { Descriptor, OciRepository } from "../oci/index.js";
import { parseLock, verifyLock } from "../lock/index.js";
import type { ActivationLock } from "../lock/index.js";
import { VerificationError } from "../sign/index.js";
import { safeEqual } from "../lib/index.js";
import { findStatements, MAX_STATEMENT_CANDIDATES } from "./find-statements.js";
import type { FoundStatement, ReleaseTrust, SkippedCandidate } from "./find-statements.js";
import type { ReleaseStatement } from "./statement.js";

export type VerifyReleaseOptions = ReleaseTrust & {
  /** The tag the artifact was addressed by (for messages; sidecar tags are no longer consulted). */
  tag?: string;
};

export interface VerifyStep {
  step: string;
  ok: boolean;
  detail: string;
}

/** A lock or bundle attachment the statement does not name: listed, never used. */
export interface IgnoredAttachment {
  manifest: string;
  artifactType: string;
  blob?: string;
  reason: string;
}

export interface VerifyReleaseReport {
  artifact: { digest: string; mediaType: string };
  /** The statement chosen (valid, and the highest sequence among the valid ones), with the envelope it was verified from. */
  statement: FoundStatement;
  /** Exactly the lock the statement names. */
  lock: { blob: string; size: number; bytes: Uint8Array; lock: ActivationLock };
  /** Exactly the policy bundle the statement names. */
  policy: { blob: string; size: number; bytes: Uint8Array };
  /** Statement candidates that were not trusted, and why. */
  skipped: SkippedCandidate[];
  /** Lock and bundle attachments the statement does not name. */
  ignored: IgnoredAttachment[];
  steps: VerifyStep[];
}

/**
 * Verifies a release fail-closed against ONE signed release statement:
 *   1. find every statement candidate (three read paths, each capped), keep the
 *      valid ones (trusted keys to threshold, this image, repository, channel,
 *      unexpired, not from the future) and choose the highest sequence; two
 *      different statements at that sequence are equivocation;
 *   2. every blob under the image manifest matches its digest;
 *   3. the lock and the bundle are fetched BY THE DIGESTS THE STATEMENT NAMES
 *      (content-addressed: no listing is trusted); the lock recomputes, pins
 *      this image and this bundle, and carries the statement's fingerprint.
 * Lock/bundle attachments the statement does not name are reported in
 * `ignored` and never used. Any failure is a VerificationError (exit 4).
 */
export async function verifyRelease(repo: OciRepository, target: string, opts: VerifyReleaseOptions): Promise<VerifyReleaseReport> {
  const steps: VerifyStep[] = [];
  // A tag that does not exist is the caller's mistake (exit 1); a tag holding junk is hostile content (exit 4).
  const manifest = await asVerification(repo.getManifest(target), `the manifest at ${target}`, MALFORMED);
  const artifact = { digest: manifest.digest, mediaType: manifest.mediaType };
  const { valid, skipped } = await findStatements(repo, artifact.digest, opts);
  const statement = choose(valid, skipped, artifact.digest, repo.location);
  const p = statement.predicate;
  steps.push({ step: "statement", ok: true, detail: `sequence ${p.sequence}, channel ${p.channel}, ${p.repository}, issued ${p.issued_at}, expires ${p.expires_at}; signed by ${statement.keyIds.length} trusted key(s); ${statement.digest}` });
  const blobs = await verifyTree(repo, manifest.bytes, manifest.mediaType);
  steps.push({ step: "artifact-digests", ok: true, detail: `manifest and ${blobs} blobs match their digests` });

  const lockBytes = await namedBlob(repo, p.lock.digest, p.lock.size, "LOCK_MISSING", "activation lock");
  const lock = parseLock(lockBytes);
  await verifyLock(lock);
  checkLock(lock, statement, artifact.digest);
  steps.push({ step: "lock", ok: true, detail: `${p.lock.digest}: fingerprint ${lock.behavioral_fingerprint} recomputed, as the statement names; pins this artifact and the bundle` });
  const bundleBytes = await namedBlob(repo, p.policy_bundle.digest, p.policy_bundle.size, "POLICY_MISSING", "policy bundle");
  steps.push({ step: "policy", ok: true, detail: `${p.policy_bundle.name}@${p.policy_bundle.version} ${p.policy_bundle.digest}, as the statement names` });

  const ignored = await unnamedAttachments(repo, artifact.digest, statement);
  return {
    artifact, statement, skipped, ignored, steps,
    lock: { blob: p.lock.digest, size: p.lock.size, bytes: lockBytes, lock },
    policy: { blob: p.policy_bundle.digest, size: p.policy_bundle.size, bytes: bundleBytes },
  };
}

/** The highest valid sequence; equal sequences with different bytes are equivocation. */
function choose(valid: FoundStatement[], skipped: SkippedCandidate[], digest: string, location: string): FoundStatement {
  if (valid.length === 0) {
    // One line (the CLI's error contract); every reason is in it and, structured, in details.skipped.
    const reasons = skipped.map((s) => `[${s.source} ${s.candidate}] ${s.reason}`);
    throw new VerificationError("STATEMENT_MISSING",
      `no valid release statement for ${digest} in ${location}${skipped.length === 0 ? " (none attached)" : `; ${skipped.length} candidate(s) skipped: ${reasons.join("; ")}`}`,
      { details: { digest, skipped } });
  }
  const top = Math.max(...valid.map((s) => s.predicate.sequence));
  const best = valid.filter((s) => s.predicate.sequence === top);
  const digests = [...new Set(best.map((s) => s.digest))];
  if (digests.length > 1) {
    throw new VerificationError("STATEMENT_EQUIVOCATION", `${digests.length} different valid release statements claim sequence ${top} for ${digest}: ${digests.join(", ")}`,
      { details: { digest, sequence: top, digests } });
  }
  return best[0] as FoundStatement;
}

function checkLock(lock: ActivationLock, s: ReleaseStatement, artifactDigest: string): void {
  const p = s.predicate;
  if (!safeEqual(lock.agent_artifact.digest, artifactDigest)) {
    throw new VerificationError("ARTIFACT_DIGEST_MISMATCH", `the lock the statement names pins agent_artifact.digest ${lock.agent_artifact.digest} but the artifact is ${artifactDigest}`,
      { details: { artifact: "artifact", expected: lock.agent_artifact.digest, actual: artifactDigest } });
  }
  if (!safeEqual(lock.policy_bundle.digest, p.policy_bundle.digest)) {
    throw new VerificationError("POLICY_DIGEST_MISMATCH", `the statement names bundle ${p.policy_bundle.digest} but its lock names ${lock.policy_bundle.digest}`,
      { details: { artifact: "policy bundle", expected: lock.policy_bundle.digest, actual: p.policy_bundle.digest } });
  }
  if (!safeEqual(lock.behavioral_fingerprint, p.lock.behavioral_fingerprint)) {
    throw new VerificationError("STATEMENT_LOCK_MISMATCH", `the lock ${p.lock.digest} has fingerprint ${lock.behavioral_fingerprint} but the statement names ${p.lock.behavioral_fingerprint}`,
      { details: { expected: p.lock.behavioral_fingerprint, actual: lock.behavioral_fingerprint } });
  }
}

/** A blob by the digest and size a verified statement names: missing is *_MISSING, altered is BLOB_DIGEST_MISMATCH. */
async function namedBlob(repo: OciRepository, digest: string, size: number, code: "LOCK_MISSING" | "POLICY_MISSING", what: string): Promise<Uint8Array> {
  try {
    return await wrapTamper(repo.getBlob(digest, { expectedSize: size }), { mediaType: what, digest, size });
  } catch (e) {
    if (e instanceof OciError && e.code === "OCI_NOT_FOUND") {
      throw new VerificationError(code, `the release statement names the ${what} ${digest} but ${repo.location} does not hold it`,
        "copy the release with its referrers (`autonomy oci copy` does), or re-sign naming the file (`autonomy sign --lock --policy-bundle` attaches it)", { details: { artifact: what, digest } });
    }
    throw e;
  }
}

/** Lock and bundle attachments whose blob the statement does not name (anyone with push rights can add them). */
async function unnamedAttachments(repo: OciRepository, subject: string, s: ReleaseStatement): Promise<IgnoredAttachment[]> {
  const named = new Set([s.predicate.lock.digest, s.predicate.policy_bundle.digest]);
  const { found } = await readReferrerSources(repo, subject);
  const out: IgnoredAttachment[] = [];
  let read = 0;
  for (const r of found.filter((x) => x.artifactType === MediaTypes.lock || x.artifactType === MediaTypes.policyBundle)) {
    const artifactType = r.artifactType ?? "";
    if (read >= MAX_STATEMENT_CANDIDATES) {
      out.push({ manifest: r.digest, artifactType, reason: "not read (over the per-subject bound); not named by the release statement" });
      continue;
    }
    read += 1;
    const layers = await layersOf(repo, r.digest);
    if (typeof layers === "string") {
      out.push({ manifest: r.digest, artifactType, reason: layers });
      continue;
    }
    for (const l of layers.filter((x) => !named.has(x.digest))) out.push({ manifest: r.digest, artifactType, blob: l.digest, reason: "not named by the release statement; never used" });
  }
  // A report, not a trust input: bounded like everything read from the registry.
  if (out.length <= MAX_STATEMENT_CANDIDATES) return out;
  const rest = out.length - MAX_STATEMENT_CANDIDATES;
  return [...out.slice(0, MAX_STATEMENT_CANDIDATES), { manifest: `${rest} more`, artifactType: "(several)", reason: "not named by the release statement; never used (not listed one by one)" }];
}

async function layersOf(repo: OciRepository, digest: string): Promise<Descriptor[] | string> {
  try {
    const m = await repo.getManifest(digest);
    const parsed = parseManifest(m.bytes, m.mediaType);
    return parsed.kind === "manifest" ? parsed.value.layers : "an index, not an attachment manifest; never used";
  } catch (e) {
    if (e instanceof OciError) return `manifest unreadable (${e.code}); never used`;
    throw e;
  }
}

/** Fetches every blob the manifest names (recursively for an index); each read verifies digest and size. */
async function verifyTree(repo: OciRepository, bytes: Uint8Array, mediaType: string): Promise<number> {
  const parsed = parseManifest(bytes, mediaType);
  let n = 0;
  for (const d of childDescriptors(parsed)) {
    if (parsed.kind === "index") {
      const child = await asVerification(repo.getManifest(d.digest), `child manifest ${d.digest}`);
      n += await verifyTree(repo, child.bytes, child.mediaType);
    } else {
      // Streamed and hashed, not held: a multi-GB model layer costs one chunk of memory.
      await asVerification(wrapTamper(repo.verifyBlob(d.digest, { expectedSize: d.size }), d), `layer ${d.digest}`);
      n += 1;
    }
  }
  return n;
}

/** Content that is missing from, or malformed in, the store holding the release is hostile content: exit 4, not 1. */
const MALFORMED: ReadonlySet<string> = new Set(["OCI_MANIFEST_INVALID", "OCI_MEDIA_TYPE_UNKNOWN"]);
const MISSING_OR_MALFORMED: ReadonlySet<string> = new Set([...MALFORMED, "OCI_NOT_FOUND"]);

async function asVerification<T>(p: Promise<T>, what: string, codes: ReadonlySet<string> = MISSING_OR_MALFORMED): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof OciError && codes.has(e.code)) {
      throw new VerificationError("ARTIFACT_INVALID", `${what} of the release is missing or malformed: ${e.code}: ${e.message}`, { details: { cause: e.code }, cause: e });
    }
    throw e;
  }
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
