import { EMPTY_JSON, MediaTypes, OciError, cosignAttestationTag, encodeManifest, parseManifest, pushReferrer } from "../oci/index.js";
import type { Descriptor, ImageManifest, OciRepository } from "../oci/index.js";
import type { DsseEnvelope } from "../sign/index.js";
import { COSIGN_SIGNATURE_ANNOTATION } from "./signatures.js";
import { MAX_STATEMENT_CANDIDATES } from "./find-statements.js";
import { RELEASE_PREDICATE_TYPE } from "./statement.js";

/** The predicateType annotation cosign puts on attestation layers. */
export const PREDICATE_TYPE_ANNOTATION = "predicateType";

/**
 * Publishes a signed statement the two ways readers look for it:
 *   - an OCI 1.1 referrer of the image (API or `sha256-<hex>` fallback index):
 *     empty config, one layer = the DSSE envelope JSON, artifactType
 *     `application/vnd.autonomyops.release-statement.v1+dsse`;
 *   - appended as a layer to cosign's `sha256-<hex>.att` tag manifest (the tag
 *     scheme `cosign verify-attestation` reads), keeping the newest layers
 *     within the per-subject read bound.
 * Returns the referrer's descriptor and the envelope blob's digest.
 */
export async function publishStatement(repo: OciRepository, subject: Descriptor, envelope: DsseEnvelope): Promise<{ referrer: Descriptor; envelope: string }> {
  return publishEnvelopeBytes(repo, subject, Buffer.from(JSON.stringify(envelope), "utf8"));
}

/** {@link publishStatement} for an envelope's exact stored bytes (a copy keeps the envelope blob's digest). */
export async function publishEnvelopeBytes(repo: OciRepository, subject: Descriptor, bytes: Uint8Array): Promise<{ referrer: Descriptor; envelope: string }> {
  const layer: Descriptor = {
    mediaType: MediaTypes.dsseEnvelope,
    digest: await repo.putBlob(bytes),
    size: bytes.byteLength,
    annotations: { [PREDICATE_TYPE_ANNOTATION]: RELEASE_PREDICATE_TYPE, [COSIGN_SIGNATURE_ANNOTATION]: "" },
  };
  const config: Descriptor = { mediaType: MediaTypes.empty, digest: await repo.putBlob(EMPTY_JSON), size: EMPTY_JSON.byteLength };
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.imageManifest,
    artifactType: MediaTypes.releaseStatement,
    config,
    layers: [layer],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
  };
  const encoded = encodeManifest(manifest);
  const referrer = await pushReferrer(repo, encoded.bytes, manifest.mediaType);
  await appendAttestation(repo, subject.digest, layer, config);
  return { referrer, envelope: layer.digest };
}

/** Appends `layer` to the `.att` tag manifest (created when absent, rebuilt when what is there is not a manifest). */
async function appendAttestation(repo: OciRepository, subjectDigest: string, layer: Descriptor, config: Descriptor): Promise<void> {
  const tag = cosignAttestationTag(subjectDigest);
  const existing = await existingLayers(repo, tag);
  if (existing.some((l) => l.digest === layer.digest)) return;
  const layers = [...existing, layer].slice(-MAX_STATEMENT_CANDIDATES);
  const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaTypes.imageManifest, config, layers };
  await repo.putManifest(encodeManifest(manifest).bytes, manifest.mediaType, tag);
}

async function existingLayers(repo: OciRepository, tag: string): Promise<Descriptor[]> {
  try {
    const m = await repo.getManifest(tag);
    const parsed = parseManifest(m.bytes, m.mediaType);
    return parsed.kind === "manifest" ? parsed.value.layers.filter((l) => l.mediaType === MediaTypes.dsseEnvelope) : [];
  } catch (e) {
    // Absent or junk: start a clean manifest (what was there is not an attestation list we could append to).
    if (e instanceof OciError) return [];
    throw e;
  }
}
