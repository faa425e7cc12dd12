import { OciError } from "./errors.js";
import { encodeManifest, parseManifest } from "./manifest.js";
import { MediaTypes } from "./types.js";
import type { Descriptor, ImageIndex, OciRepository } from "./types.js";

/** The referrers tag schema (OCI distribution 1.1): `sha256-<hex>` names the fallback index for a subject. */
export function referrersFallbackTag(subjectDigest: string): string {
  return subjectDigest.replace(":", "-");
}

/** cosign's legacy signature tag: `sha256-<hex>.sig`. */
export function cosignSignatureTag(subjectDigest: string): string {
  return `${referrersFallbackTag(subjectDigest)}.sig`;
}

/** cosign's attestation tag: `sha256-<hex>.att` (one manifest, one layer per DSSE envelope, appended). */
export function cosignAttestationTag(subjectDigest: string): string {
  return `${referrersFallbackTag(subjectDigest)}.att`;
}

/** Where a referrer was found, so verification can report it. */
export type ReferrerSource = "referrers-api" | "referrers-tag" | "cosign-sig-tag" | "cosign-att-tag";

export interface Referrer extends Descriptor {
  source: ReferrerSource;
}

/**
 * Lists the manifests that name `subjectDigest` as their subject: the native
 * referrers API where the store has it, else the `sha256-<hex>` fallback index.
 * Filtered by artifactType when given. Duplicates (same digest) are dropped.
 * `includeFallbackTag` reads the fallback index even where the API exists.
 */
export async function listReferrers(repo: OciRepository, subjectDigest: string, artifactType?: string, opts: { includeFallbackTag?: boolean } = {}): Promise<Referrer[]> {
  const caps = await repo.capabilities();
  const found: Referrer[] = caps.referrersApi ? (await repo.referrersNative(subjectDigest)).map((d) => ({ ...d, source: "referrers-api" as const })) : [];
  // Verification also reads the fallback index where an API exists: a copy made
  // by another tool may carry referrers only under the tag schema.
  if (!caps.referrersApi || opts.includeFallbackTag) {
    found.push(...(await readFallbackIndex(repo, subjectDigest)).manifests.map((d) => ({ ...d, source: "referrers-tag" as const })));
  }
  const seen = new Set<string>();
  return found.filter((d) => {
    if (seen.has(d.digest) || (artifactType !== undefined && d.artifactType !== artifactType)) return false;
    seen.add(d.digest);
    return true;
  });
}

/**
 * Like {@link listReferrers} with the fallback index always read, but for
 * hostile stores: a source that cannot be read (a fallback tag overwritten by
 * junk, a referrers answer that is not an index) is reported as a problem
 * instead of failing the whole listing, so one broken source cannot hide the
 * others; an entry a store cannot read is a problem on its own. `truncated`
 * says a source held more than is read (OCI_TOO_MANY_REFERRERS): a caller that
 * needs every candidate must then fail closed. Unfiltered; duplicates dropped.
 */
export async function readReferrerSources(repo: OciRepository, subjectDigest: string): Promise<{ found: Referrer[]; problems: ReferrerProblem[]; truncated: boolean }> {
  const found: Referrer[] = [];
  const problems: ReferrerProblem[] = [];
  let truncated = false;
  const note = (source: ReferrerSource, e: unknown): void => {
    if (!(e instanceof OciError)) throw e;
    if (e.code === "OCI_TOO_MANY_REFERRERS") truncated = true;
    problems.push({ source, reason: `${e.code}: ${e.message}` });
  };
  if ((await repo.capabilities()).referrersApi) {
    try {
      const onSkip = (digest: string, reason: string): void => void problems.push({ source: "referrers-api", reason: `${digest}: ${reason}` });
      found.push(...(await repo.referrersNative(subjectDigest, { onSkip })).map((d) => ({ ...d, source: "referrers-api" as const })));
    } catch (e) {
      note("referrers-api", e);
    }
  }
  try {
    found.push(...(await readFallbackIndex(repo, subjectDigest)).manifests.map((d) => ({ ...d, source: "referrers-tag" as const })));
  } catch (e) {
    note("referrers-tag", e);
  }
  const unique = new Map<string, Referrer>();
  for (const d of found) if (!unique.has(d.digest)) unique.set(d.digest, d);
  return { found: [...unique.values()], problems, truncated };
}

/** A referrer source, or one entry of it, that could not be read. */
export interface ReferrerProblem {
  source: ReferrerSource;
  reason: string;
}

async function readFallbackIndex(repo: OciRepository, subjectDigest: string): Promise<ImageIndex> {
  try {
    const m = await repo.getManifest(referrersFallbackTag(subjectDigest));
    const parsed = parseManifest(m.bytes, m.mediaType);
    if (parsed.kind !== "index") {
      throw new OciError("OCI_MANIFEST_INVALID", `referrers tag ${referrersFallbackTag(subjectDigest)} in ${repo.location} is not an index`,
        "the fallback tag was overwritten by something else; re-attach the artifacts");
    }
    return parsed.value;
  } catch (e) {
    if (e instanceof OciError && e.code === "OCI_NOT_FOUND") return { schemaVersion: 2, mediaType: MediaTypes.imageIndex, manifests: [] };
    throw e;
  }
}

/**
 * Stores a manifest that has a `subject` so that readers find it either way:
 * by digest always, and, where the store has no referrers API, by adding its
 * descriptor (with artifactType and annotations lifted in, as the spec
 * requires) to the subject's `sha256-<hex>` fallback index.
 */
export async function pushReferrer(repo: OciRepository, bytes: Uint8Array, mediaType: string): Promise<Descriptor> {
  const parsed = parseManifest(bytes, mediaType);
  const subject = parsed.value.subject;
  if (!subject) throw new OciError("OCI_MANIFEST_INVALID", "a referrer manifest needs a subject", "set subject to the artifact it refers to");
  const digest = await repo.putManifest(bytes, parsed.mediaType);
  const desc: Descriptor = { mediaType: parsed.mediaType, digest, size: bytes.byteLength };
  const artifactType = parsed.value.artifactType ?? (parsed.kind === "manifest" ? parsed.value.config.mediaType : undefined);
  if (artifactType !== undefined) desc.artifactType = artifactType;
  if (parsed.value.annotations) desc.annotations = { ...parsed.value.annotations };
  if (!(await repo.capabilities()).referrersApi) await addToFallbackIndex(repo, subject.digest, desc);
  return desc;
}

async function addToFallbackIndex(repo: OciRepository, subjectDigest: string, desc: Descriptor): Promise<void> {
  const index = await readFallbackIndex(repo, subjectDigest);
  if (index.manifests.some((d) => d.digest === desc.digest)) return;
  const next: ImageIndex = { schemaVersion: 2, mediaType: MediaTypes.imageIndex, manifests: [...index.manifests, desc] };
  const { bytes } = encodeManifest(next);
  await repo.putManifest(bytes, MediaTypes.imageIndex, referrersFallbackTag(subjectDigest));
}
