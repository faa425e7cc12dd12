import { createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { MediaTypes, OciError, attachFile, parseManifest, readReferrerSources, referenceTarget } from "../oci/index.js";
import type { Descriptor, OciRepository, Reference } from "../oci/index.js";
import { parseLock, verifyLock } from "../lock/index.js";
import { VerificationError } from "../sign/index.js";
import { UsageError, sha256Digest } from "../lib/index.js";
import { findStatements, MAX_STATEMENT_CANDIDATES } from "./find-statements.js";
import { trustedKeys } from "./trust.js";
import type { FoundStatement } from "./find-statements.js";
import { signSubject } from "./signatures.js";
import { signStatement } from "./statement.js";
import type { ReleasePredicate } from "./statement.js";
import { publishStatement } from "./publish-statement.js";

/** Defaults for a release statement (documented in docs/supply-chain.md). */
export const DEFAULT_CHANNEL = "stable";
export const DEFAULT_EXPIRES_IN_MS = 90 * 24 * 3600 * 1000;

export interface SignReleaseOptions {
  /** Release key(s): each signs the statement (a node may require a threshold) and one simple-signing signature. */
  keys: readonly KeyObject[];
  now: Date;
  /** Release sequence; nodes never activate a lower one (rollback = the older content under a NEW sequence). */
  sequence: number;
  /** The signed identity: the repository nodes pull this release from (`host/path`). */
  repository: string;
  /** Default {@link DEFAULT_CHANNEL}. */
  channel?: string;
  /** Validity from `now`; default {@link DEFAULT_EXPIRES_IN_MS} (90 days). */
  expiresInMs?: number;
  /** The lock file's exact bytes: signed by digest, attached when not attached yet. */
  lock: Uint8Array;
  /** The policy bundle's exact bytes, and the name/version its manifest declares (the caller reads them). */
  bundle: { bytes: Uint8Array; name: string; version: string };
  /** Progress lines for the operator (the CLI prints them on stderr). */
  onProgress?: (line: string) => void;
}

export interface NamedFile {
  digest: string;
  size: number;
  /** The referrer manifest carrying it; `attached` tells whether this run attached it. */
  manifest: string;
  attached: boolean;
}

export interface SignReleaseResult {
  /** The image manifest digest signed: resolved once, at the start. */
  digest: string;
  mediaType: string;
  statement: { digest: string; envelope: string; referrer: string; predicate: ReleasePredicate };
  lock: NamedFile;
  policy: NamedFile;
  /** cosign simple-signing signature manifests (interoperability only: nodes trust the statement). */
  signatures: string[];
  /** Locks and bundles found attached that the operator did not name: reported, never signed. */
  unnamed: { manifest: string; artifactType: string; blob: string }[];
  /**
   * True when a valid statement for this exact release (same sequence, image, lock,
   * bundle, channel, repository; only issued_at/expires_at may differ) was already
   * published, e.g. by a run that crashed or timed out: it is reused and nothing
   * new is signed or published (a second one would be equivocation).
   */
  reused: boolean;
}

/**
 * Signs one release naming its inputs: the image REF resolves to (once), and
 * exactly the lock and bundle bytes given — never whatever a registry lists.
 * Checks the lock pins that image and that bundle, attaches the two files when
 * not attached yet, writes simple-signing signatures (interop), and publishes
 * the release statement, after checking REF's tag still points at the digest
 * signed (TAG_MOVED otherwise, nothing published for the new content).
 * Rollback is this call with older content and a new, higher sequence.
 */
export async function signRelease(repo: OciRepository, ref: Reference, opts: SignReleaseOptions): Promise<SignReleaseResult> {
  const say = opts.onProgress ?? ((): void => undefined);
  const subject = await repo.resolve(referenceTarget(ref));
  say(`signing ${subject.digest}`);
  const lockDigest = sha256Digest(opts.lock);
  const bundleDigest = sha256Digest(opts.bundle.bytes);
  const lock = parseLock(opts.lock);
  await verifyLock(lock);
  checkNamedFiles(lock.agent_artifact.digest, lock.policy_bundle.digest, subject.digest, bundleDigest);
  const predicate: ReleasePredicate = {
    sequence: opts.sequence,
    channel: opts.channel ?? DEFAULT_CHANNEL,
    repository: opts.repository,
    image: { digest: subject.digest, mediaType: subject.mediaType },
    lock: { digest: lockDigest, size: opts.lock.byteLength, behavioral_fingerprint: lock.behavioral_fingerprint },
    policy_bundle: { digest: bundleDigest, size: opts.bundle.bytes.byteLength, name: opts.bundle.name, version: opts.bundle.version },
    issued_at: opts.now.toISOString(),
    expires_at: new Date(opts.now.getTime() + (opts.expiresInMs ?? DEFAULT_EXPIRES_IN_MS)).toISOString(),
  };
  // Before anything is published: a retried run reuses its statement, a taken sequence is refused.
  const existing = await publishedAlready(repo, subject.digest, predicate, opts);

  const found = await attachedFiles(repo, subject.digest);
  const subjectTag = ref.digest === undefined ? (ref.tag ?? "latest") : undefined;
  const lockFile = await ensureAttached(repo, subject, found, { digest: lockDigest, data: opts.lock, name: "autonomy.lock.json", artifactType: MediaTypes.lock, subjectTag }, say);
  const policyFile = await ensureAttached(repo, subject, found, { digest: bundleDigest, data: opts.bundle.bytes, name: "policy-bundle.tar.gz", artifactType: MediaTypes.policyBundle, subjectTag }, say);
  const unnamed = found.filter((f) => f.blob !== lockDigest && f.blob !== bundleDigest);
  for (const u of unnamed) say(`not signed: ${u.artifactType} ${u.blob} attached beside them (manifest ${u.manifest}) is not one you named`);

  if (existing !== undefined) {
    say(`sequence ${opts.sequence} already carries this release's statement ${existing.digest} (issued ${existing.predicate.issued_at}): reused, nothing new signed or published`);
    return {
      digest: subject.digest, mediaType: subject.mediaType,
      statement: { digest: existing.digest, envelope: existing.envelope.layer.digest, referrer: existing.envelope.manifest, predicate: existing.predicate },
      lock: lockFile, policy: policyFile, signatures: [], unnamed, reused: true,
    };
  }
  const signatures: string[] = [];
  for (const key of opts.keys) {
    signatures.push((await signSubject(repo, subject, { key, dockerReference: opts.repository, signedAt: opts.now, ...(subjectTag !== undefined ? { subjectTag } : {}) })).digest);
  }
  const signed = signStatement(predicate, opts.keys);
  await refuseMovedTag(repo, subjectTag, subject.digest);
  const published = await publishStatement(repo, subject, signed.envelope);
  say(`published release statement ${signed.digest} (sequence ${predicate.sequence}, channel ${predicate.channel})`);
  return {
    digest: subject.digest, mediaType: subject.mediaType,
    statement: { digest: signed.digest, envelope: published.envelope, referrer: published.referrer.digest, predicate },
    lock: lockFile, policy: policyFile, signatures, unnamed, reused: false,
  };
}

/**
 * The valid statement (verified with the signer's own public keys, for this
 * channel and repository) already published for exactly this release at this
 * sequence, if any. A different valid statement at this sequence or above is
 * refused before anything is published: publishing would be equivocation
 * (the image unverifiable for ever) or a release nodes never pick.
 */
async function publishedAlready(repo: OciRepository, subject: string, p: ReleasePredicate, opts: SignReleaseOptions): Promise<FoundStatement | undefined> {
  const trusted = trustedKeys(opts.keys.map((k) => createPublicKey(k)));
  const { valid } = await findStatements(repo, subject, { trusted, threshold: 1, channel: p.channel, repository: p.repository, now: opts.now });
  const same = valid.filter((s) => s.predicate.sequence === p.sequence && sameRelease(s.predicate, p));
  const other = valid.filter((s) => s.predicate.sequence >= p.sequence && !sameRelease(s.predicate, p));
  if (other.length > 0) {
    const list = other.map((s) => `sequence ${s.predicate.sequence} (${s.digest}, policy ${s.predicate.policy_bundle.name}@${s.predicate.policy_bundle.version}, lock ${s.predicate.lock.digest})`);
    throw new UsageError(`${subject} already carries a different release statement at sequence ${p.sequence} or above: ${list.join("; ")}; nothing was published`,
      `choose a sequence above ${Math.max(...other.map((s) => s.predicate.sequence))} for this content (\`autonomy sign … --sequence N\`); re-running with the same lock and bundle at the same sequence reuses the existing statement`);
  }
  return same[0];
}

/** Same release apart from when it was signed and how long it is valid. */
function sameRelease(a: ReleasePredicate, b: ReleasePredicate): boolean {
  return a.sequence === b.sequence && a.channel === b.channel && a.repository === b.repository
    && a.image.digest === b.image.digest && a.image.mediaType === b.image.mediaType
    && a.lock.digest === b.lock.digest && a.lock.size === b.lock.size && a.lock.behavioral_fingerprint === b.lock.behavioral_fingerprint
    && a.policy_bundle.digest === b.policy_bundle.digest && a.policy_bundle.size === b.policy_bundle.size
    && a.policy_bundle.name === b.policy_bundle.name && a.policy_bundle.version === b.policy_bundle.version;
}

function checkNamedFiles(lockArtifact: string, lockBundle: string, subject: string, bundleDigest: string): void {
  if (lockArtifact !== subject) {
    throw new VerificationError("ARTIFACT_DIGEST_MISMATCH", `the lock pins agent_artifact.digest ${lockArtifact} but REF resolves to ${subject}`,
      "create the lock for this image (`autonomy lock create`), or sign the image the lock pins", { details: { expected: lockArtifact, actual: subject } });
  }
  if (lockBundle !== bundleDigest) {
    throw new VerificationError("POLICY_DIGEST_MISMATCH", `the lock names policy bundle ${lockBundle} but the bundle file is ${bundleDigest}`,
      "pass the bundle the lock names, or re-create the lock for this bundle", { details: { expected: lockBundle, actual: bundleDigest } });
  }
}

interface FoundFile {
  manifest: string;
  artifactType: string;
  blob: string;
}

/**
 * Lock and bundle blobs attached to `subject` (any read path), bounded like
 * every registry read: at most {@link MAX_STATEMENT_CANDIDATES} manifests and as
 * many layers each (anyone with push rights can attach more; the rest are
 * never signed anyway). Unreadable manifests are left out.
 */
async function attachedFiles(repo: OciRepository, subject: string): Promise<FoundFile[]> {
  const { found } = await readReferrerSources(repo, subject);
  const out: FoundFile[] = [];
  const candidates = found.filter((x) => x.artifactType === MediaTypes.lock || x.artifactType === MediaTypes.policyBundle);
  for (const r of candidates.slice(0, MAX_STATEMENT_CANDIDATES)) {
    try {
      const m = await repo.getManifest(r.digest);
      const parsed = parseManifest(m.bytes, m.mediaType);
      if (parsed.kind !== "manifest" || parsed.value.subject?.digest !== subject) continue;
      for (const l of parsed.value.layers.slice(0, MAX_STATEMENT_CANDIDATES)) out.push({ manifest: r.digest, artifactType: r.artifactType ?? "", blob: l.digest });
    } catch (e) {
      if (!(e instanceof OciError)) throw e;
    }
  }
  return out;
}

async function ensureAttached(repo: OciRepository, subject: Descriptor, found: FoundFile[],
  f: { digest: string; data: Uint8Array; name: string; artifactType: string; subjectTag: string | undefined }, say: (l: string) => void): Promise<NamedFile> {
  const already = found.find((x) => x.blob === f.digest && x.artifactType === f.artifactType);
  // A listed manifest whose blob is missing is not "attached": nodes fetch the blob by digest (re-attached below).
  if (already !== undefined && (await repo.hasBlob(f.digest))) {
    say(`${f.name} ${f.digest} already attached (${already.manifest})`);
    return { digest: f.digest, size: f.data.byteLength, manifest: already.manifest, attached: false };
  }
  const pushed = await attachFile(repo, subject, { name: f.name, data: f.data }, { artifactType: f.artifactType, ...(f.subjectTag !== undefined ? { subjectTag: f.subjectTag } : {}) });
  say(`attached ${f.name} ${f.digest} (${pushed.digest})`);
  return { digest: f.digest, size: f.data.byteLength, manifest: pushed.digest, attached: true };
}

/** REF's tag must still name the digest signed: otherwise someone moved it while we worked. */
async function refuseMovedTag(repo: OciRepository, tag: string | undefined, signed: string): Promise<void> {
  if (tag === undefined) return;
  const now = (await repo.resolve(tag)).digest;
  if (now !== signed) {
    throw new VerificationError("TAG_MOVED", `the tag ${tag} moved from ${signed} to ${now} while signing; the release statement was not published`,
      { details: { tag, signed, now } });
  }
}
