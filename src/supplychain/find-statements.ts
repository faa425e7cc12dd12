import { MediaTypes, OciError, cosignAttestationTag, parseManifest, readReferrerSources } from "../oci/index.js";
import type { Descriptor, OciRepository, ReferrerSource } from "../oci/index.js";
import { VerificationError, parseEnvelope } from "../sign/index.js";
import type { TrustedKey } from "../sign/index.js";
import { MAX_STATEMENT_BYTES, StatementRejected, openStatement } from "./statement.js";
import type { ReleaseStatement } from "./statement.js";

/** What a node (or `autonomy verify`) trusts a release statement for. */
export interface ReleaseTrust {
  /** Release keys; a statement needs signatures by `threshold` distinct ones. */
  trusted: readonly TrustedKey[];
  threshold: number;
  /** The node's channel: a statement for another channel is skipped. */
  channel: string;
  /** The signed identity the node expects (`host/path` of the release repository): compared exactly (attack 6). */
  repository: string;
  /** Fixed start time of this verification (TUF): expiry and issue time are compared with it. */
  now: Date;
}

/**
 * Exactly the envelope a valid statement was verified from: its bytes as read
 * (signatures checked against them), the layer descriptor they were read
 * through, and the manifest (referrer digest, or the `.att` tag) listing it.
 * The node stores these bytes and `sign` reports these descriptors: nothing
 * re-reads the registry to find "the" envelope again.
 */
export interface StatementEnvelope {
  layer: Descriptor;
  manifest: string;
  source: ReferrerSource;
  bytes: Uint8Array;
}

/** A valid statement together with the envelope it was verified from. */
export type FoundStatement = ReleaseStatement & { envelope: StatementEnvelope };

/** A candidate that was not trusted, and why (verification lists every one). */
export interface SkippedCandidate {
  candidate: string;
  source: string;
  reason: string;
}

/**
 * At most this many statement referrer manifests, and (separately) this many
 * `.att` layers, are read per subject. Over either bound verification fails
 * closed: "the highest valid sequence" only means something when every
 * candidate was looked at (a flood listed first must not hide the newest release).
 */
export const MAX_STATEMENT_CANDIDATES = 32;
/** A statement dated further than this in the future is skipped (clock skew between signer and node). */
export const ISSUED_AT_SKEW_MS = 5 * 60_000;

/**
 * Every release statement stored for `subject` through the three read paths
 * (referrers API, `sha256-<hex>` fallback index, cosign's `.att` tag), each
 * read with the 64 KiB cap before it is parsed and checked as it is read.
 * Returns the valid ones and, for every other candidate, why it was skipped.
 * Hostile content is a skip; only more candidates than are read (any bound
 * hit) is an error, STATEMENT_CANDIDATES_EXCEEDED: fail closed.
 */
export async function findStatements(repo: OciRepository, subject: string, trust: ReleaseTrust): Promise<{ valid: FoundStatement[]; skipped: SkippedCandidate[] }> {
  checkTrust(trust);
  const scan: Scan = { repo, subject, trust, valid: [], skipped: [], seen: new Set() };
  const { found, problems, truncated } = await readReferrerSources(repo, subject);
  for (const p of problems) scan.skipped.push({ candidate: "(listing)", source: p.source, reason: `referrers could not be listed: ${p.reason}` });
  const referrers = found.filter((r) => r.artifactType === MediaTypes.releaseStatement);
  // The .att tag is read whatever the referrers hold: its own bound, not theirs.
  const att = await manifestLayers(repo, cosignAttestationTag(subject), "cosign-att-tag", scan.skipped);
  checkBounds(subject, repo.location, { truncated, referrers: referrers.length, attLayers: att.length });
  // One manifest at a time, each envelope checked as soon as it is read: nothing piles up before a check.
  for (const r of referrers) {
    const layers = await manifestLayers(repo, r.digest, r.source, scan.skipped);
    // A statement referrer carries exactly one envelope: one manifest cannot smuggle in many candidates.
    if (layers.length !== 1) {
      if (layers.length > 1) scan.skipped.push({ candidate: r.digest, source: r.source, reason: `has ${layers.length} layers; a statement manifest has exactly one (not read)` });
      continue;
    }
    await scanLayer(scan, r.digest, r.source, layers[0] as Descriptor);
  }
  // The .att tag appends: newest last, so read it from the end.
  for (const layer of [...att].reverse()) await scanLayer(scan, cosignAttestationTag(subject), "cosign-att-tag", layer);
  return { valid: scan.valid, skipped: scan.skipped };
}

interface Scan {
  repo: OciRepository;
  subject: string;
  trust: ReleaseTrust;
  valid: FoundStatement[];
  skipped: SkippedCandidate[];
  /** Layers already read and checked, keyed by (mediaType, digest, size). */
  seen: Set<string>;
}

/** Any candidate left unread makes "the highest valid statement" unknowable: refuse (exit 4), with the counts. */
function checkBounds(subject: string, location: string, n: { truncated: boolean; referrers: number; attLayers: number }): void {
  const over: string[] = [];
  if (n.truncated) over.push("the referrers listing exceeds its read bound");
  if (n.referrers > MAX_STATEMENT_CANDIDATES) over.push(`${n.referrers} statement referrers (bound ${MAX_STATEMENT_CANDIDATES})`);
  if (n.attLayers > MAX_STATEMENT_CANDIDATES) over.push(`${n.attLayers} layers under the .att tag (bound ${MAX_STATEMENT_CANDIDATES})`);
  if (over.length === 0) return;
  throw new VerificationError("STATEMENT_CANDIDATES_EXCEEDED", `more release statement candidates for ${subject} in ${location} than are read: ${over.join("; ")}; refusing rather than choosing among some of them`,
    { details: { digest: subject, bound: MAX_STATEMENT_CANDIDATES, referrers: n.referrers, attLayers: n.attLayers, listingTruncated: n.truncated } });
}

/** A threshold below 1 would accept unsigned statements; one above the distinct keys can never be met: both fail closed. */
function checkTrust(trust: ReleaseTrust): void {
  const distinct = new Set(trust.trusted.map((k) => k.keyId)).size;
  if (!Number.isSafeInteger(trust.threshold) || trust.threshold < 1 || trust.threshold > distinct) {
    throw new VerificationError("STATEMENT_INVALID", `a threshold of ${trust.threshold} with ${distinct} distinct trusted key(s) can never be met safely`,
      "configure at least one trusted key and a threshold between 1 and the number of distinct keys", { details: { threshold: trust.threshold, keys: distinct } });
  }
}

/**
 * Checks one envelope layer; the same envelope under the referrer and the .att
 * tag is read once. Only a layer that is actually read is remembered, keyed by
 * (mediaType, digest, size): a descriptor refused before reading (wrong media
 * type, over the cap) must not mark the digest as read, or an attacker's
 * referrer naming the genuine envelope's digest with another media type,
 * listed first, would hide the genuine one.
 */
async function scanLayer(scan: Scan, ref: string, source: ReferrerSource, layer: Descriptor): Promise<void> {
  try {
    if (layer.mediaType !== MediaTypes.dsseEnvelope) throw new StatementRejected(`layer media type ${JSON.stringify(layer.mediaType.slice(0, 100))} is not ${MediaTypes.dsseEnvelope}`);
    if (layer.size > MAX_STATEMENT_BYTES) throw new StatementRejected(`declares ${layer.size} bytes, over the ${MAX_STATEMENT_BYTES}-byte statement cap (not read)`);
    const key = JSON.stringify([layer.mediaType, layer.digest, layer.size]);
    if (scan.seen.has(key)) return;
    scan.seen.add(key);
    const bytes = await boundedRead(scan.repo, layer);
    const s = checkCandidate(bytes, scan.subject, scan.trust);
    scan.valid.push({ ...s, envelope: { layer, manifest: ref, source, bytes } });
  } catch (err) {
    if (!(err instanceof StatementRejected)) throw err;
    scan.skipped.push({ candidate: `${ref}#${layer.digest}`, source, reason: err.reason });
  }
}

async function manifestLayers(repo: OciRepository, ref: string, source: ReferrerSource, skipped: SkippedCandidate[]): Promise<Descriptor[]> {
  try {
    const m = await repo.getManifest(ref);
    const parsed = parseManifest(m.bytes, m.mediaType);
    if (parsed.kind === "manifest") return parsed.value.layers;
    skipped.push({ candidate: ref, source, reason: "an index, not a statement manifest" });
  } catch (e) {
    if (!(e instanceof OciError)) throw e;
    // No .att tag is the normal case for a registry that only has referrers: not a skip.
    if (!(source === "cosign-att-tag" && e.code === "OCI_NOT_FOUND")) skipped.push({ candidate: ref, source, reason: `manifest unreadable: ${e.code}: ${e.message}` });
  }
  return [];
}

/**
 * One envelope's bytes against every rule a node applies to a release
 * statement (threshold of trusted keys, payload type, the statement schema,
 * image digest = `subject`, repository, channel, expiry, issue time) WITHOUT
 * reading a registry: for callers that already hold the envelope (the fleet
 * simulator verifies the statement the control plane handed it). Throws
 * {@link StatementRejected} with the reason, or STATEMENT_INVALID for a
 * trust set that can never be met.
 */
export function verifyStatementEnvelope(bytes: Uint8Array, subject: string, trust: ReleaseTrust): ReleaseStatement {
  checkTrust(trust);
  if (bytes.length > MAX_STATEMENT_BYTES) throw new StatementRejected(`envelope is ${bytes.length} bytes, over the ${MAX_STATEMENT_BYTES}-byte statement cap`);
  return checkCandidate(bytes, subject, trust);
}

/** Applies every trust rule to one envelope's bytes (read with the declared size checked first, then a read that stops at it). */
function checkCandidate(bytes: Uint8Array, subject: string, trust: ReleaseTrust): ReleaseStatement {
  const env = parseEnvelope(bytes);
  if (typeof env === "string") throw new StatementRejected(`not a DSSE envelope: ${env}`);
  const s = openStatement(env, trust.trusted, trust.threshold);
  const p = s.predicate;
  if (p.image.digest !== subject) throw new StatementRejected(`signed for image ${p.image.digest}, not this artifact ${subject}`);
  if (p.repository !== trust.repository) throw new StatementRejected(`signed for repository ${p.repository}, not ${trust.repository}`);
  if (p.channel !== trust.channel) throw new StatementRejected(`signed for channel ${p.channel}, not ${trust.channel}`);
  if (Date.parse(p.expires_at) <= trust.now.getTime()) throw new StatementRejected(`expired at ${p.expires_at} (sequence ${p.sequence})`);
  if (Date.parse(p.issued_at) > trust.now.getTime() + ISSUED_AT_SKEW_MS) throw new StatementRejected(`issued at ${p.issued_at}, in the future (sequence ${p.sequence}); check the clocks`);
  return s;
}

/** Streams the blob and stops as soon as it passes its declared size: a store lying about a size cannot make us read more. */
async function boundedRead(repo: OciRepository, layer: Descriptor): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  try {
    for await (const chunk of repo.blobChunks(layer.digest, { expectedSize: layer.size })) parts.push(chunk);
  } catch (e) {
    if (e instanceof OciError) throw new StatementRejected(`envelope blob unreadable: ${e.code}: ${e.message}`);
    throw e;
  }
  return Buffer.concat(parts);
}
