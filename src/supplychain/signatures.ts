import { MediaTypes, publishReferrer, encodeManifest, EMPTY_JSON } from "../oci/index.js";
import type { Descriptor, ImageManifest, OciRepository } from "../oci/index.js";
import { SIGNED_AT_KEY, buildSimpleSigningPayload, parseSimpleSigningPayload, signPayload } from "../sign/index.js";
import type { KeyObject } from "node:crypto";

/** cosign's annotation carrying the base64 DER signature on the payload layer. */
export const COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature";
/** Convenience copy of the signed time on the layer; the authoritative copy is inside the signed payload. */
export const SIGNED_AT_ANNOTATION = SIGNED_AT_KEY;

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
 * The cosign simple-signing signatures `autonomy sign` publishes for
 * interoperability (cosign, skopeo/containers-policy): nothing in this product
 * reads them back, release verification trusts only the release statement.
 *
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
