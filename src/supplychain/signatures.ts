import { MediaTypes, OciError, cosignSignatureTag, listReferrers, parseManifest, publishReferrer, encodeManifest, EMPTY_JSON } from "../oci/index.js";
import type { Descriptor, ImageManifest, OciRepository, ParsedManifest, ReferrerSource } from "../oci/index.js";
import { MAX_STATEMENT_BYTES } from "./statement.js";
import { SIGNED_AT_KEY, buildSimpleSigningPayload, parseSimpleSigningPayload, signPayload } from "../sign/index.js";
import type { KeyObject } from "node:crypto";

/** cosign's annotation carrying the base64 DER signature on the payload layer. */
export const COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature";
/** Convenience copy of the signed time on the layer; the authoritative copy is inside the signed payload. */
export const SIGNED_AT_ANNOTATION = SIGNED_AT_KEY;
/** Bound on signature candidates read per subject, so a flooded registry cannot stall verification. */
export const MAX_SIGNATURE_CANDIDATES = 64;

export interface SignatureCandidate {
  payload: Uint8Array;
  signature: string;
  manifestDigest: string;
  source: ReferrerSource;
}

export interface SignOptions {
  key: KeyObject;
  dockerReference: string;
  signedAt: Date;
  /** Tag the subject was addressed by (for sidecar tags); absent for digests. */
  subjectTag?: string;
  /** Extra signed annotations (the payload's `optional`), e.g. the release sequence. */
  annotations?: Readonly<Record<string, string>>;
}

/**
 * Signs `subject` the canonical way: a cosign simple-signing payload layer with
 * the signature annotation, in a manifest whose `subject` is the artifact and
 * whose artifactType is cosign's OCI 1.1 signature type; published as a
 * referrer and under cosign's `sha256-<hex>.sig` tag.
 */
export async function signSubject(repo: OciRepository, subject: Descriptor, opts: SignOptions): Promise<{ digest: string; signedAt: string }> {
  const payload = buildSimpleSigningPayload({ dockerReference: opts.dockerReference, manifestDigest: subject.digest, signedAt: opts.signedAt, ...(opts.annotations ? { extra: opts.annotations } : {}) });
  const signature = signPayload(opts.key, payload);
  const signedAt = parseSimpleSigningPayload(payload).signedAt ?? "";
  const payloadDigest = await repo.putBlob(payload);
  const configDigest = await repo.putBlob(EMPTY_JSON);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.imageManifest,
    artifactType: MediaTypes.cosignSignatureArtifact,
    config: { mediaType: MediaTypes.empty, digest: configDigest, size: EMPTY_JSON.byteLength },
    layers: [{
      mediaType: MediaTypes.cosignSimpleSigning,
      digest: payloadDigest,
      size: payload.byteLength,
      annotations: { [COSIGN_SIGNATURE_ANNOTATION]: signature, [SIGNED_AT_ANNOTATION]: signedAt },
    }],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
  };
  const { bytes } = encodeManifest(manifest);
  const desc = await publishReferrer(repo, bytes, manifest.mediaType, subject.digest, opts.subjectTag);
  return { digest: desc.digest, signedAt };
}

/**
 * Every signature stored for `subjectDigest`, read from all three layouts:
 * referrers (API or `sha256-<hex>` fallback index) and cosign's legacy
 * `sha256-<hex>.sig` tag. Payload blobs are digest-verified on read. Kept for
 * interoperability (cosign/skopeo signatures): release verification trusts only
 * the release statement. Unreadable, oversized or missing candidates are skipped.
 */
export async function collectSignatures(repo: OciRepository, subjectDigest: string): Promise<SignatureCandidate[]> {
  const manifests: { digest: string; source: ReferrerSource }[] = (await listReferrers(repo, subjectDigest, MediaTypes.cosignSignatureArtifact, { includeFallbackTag: true }))
    .map((r) => ({ digest: r.digest, source: r.source }));
  const legacy = await resolveOptional(repo, cosignSignatureTag(subjectDigest));
  if (legacy !== undefined && !manifests.some((m) => m.digest === legacy)) manifests.push({ digest: legacy, source: "cosign-sig-tag" });
  const out: SignatureCandidate[] = [];
  for (const m of manifests) {
    const parsed = await optionalManifest(repo, m.digest);
    if (parsed?.kind !== "manifest") continue;
    for (const layer of parsed.value.layers) {
      const signature = layer.annotations?.[COSIGN_SIGNATURE_ANNOTATION];
      if (layer.mediaType !== MediaTypes.cosignSimpleSigning || signature === undefined) continue;
      if (out.length >= MAX_SIGNATURE_CANDIDATES) return out;
      // Hostile content is skipped, not fatal: an oversized declared payload is never read, a missing one is left out.
      if (layer.size > MAX_STATEMENT_BYTES) continue;
      const payload = await optionalBlob(repo, layer.digest, layer.size);
      if (payload !== undefined) out.push({ payload, signature, manifestDigest: m.digest, source: m.source });
    }
  }
  return out;
}

async function optionalManifest(repo: OciRepository, digest: string): Promise<ParsedManifest | undefined> {
  try {
    const fetched = await repo.getManifest(digest);
    return parseManifest(fetched.bytes, fetched.mediaType);
  } catch (e) {
    if (e instanceof OciError) return undefined;
    throw e;
  }
}

async function optionalBlob(repo: OciRepository, digest: string, size: number): Promise<Uint8Array | undefined> {
  try {
    return await repo.getBlob(digest, { expectedSize: size });
  } catch (e) {
    if (e instanceof OciError) return undefined;
    throw e;
  }
}

async function resolveOptional(repo: OciRepository, tag: string): Promise<string | undefined> {
  try {
    return (await repo.resolve(tag)).digest;
  } catch (e) {
    if (e instanceof OciError && e.code === "OCI_NOT_FOUND") return undefined;
    throw e;
  }
}
