import { basename } from "node:path";
import { pushArtifact } from "./artifact.js";
import type { PushedArtifact } from "./artifact.js";
import { pushReferrer, cosignSignatureTag } from "./referrers.js";
import { MediaTypes } from "./types.js";
import type { Descriptor, OciRepository, ProgressFn } from "./types.js";

/**
 * The original product's sidecar tags, written beside the referrer where a
 * registry has no referrers API so older clients still find lock and bundle.
 */
export function sidecarTag(artifactType: string, subjectTag: string): string | undefined {
  if (artifactType === MediaTypes.lock) return `${subjectTag}-lock`;
  if (artifactType === MediaTypes.policyBundle) return `${subjectTag}-policy`;
  return undefined;
}

export interface AttachOptions {
  artifactType: string;
  /** Tag the subject was addressed by, for sidecar tags; absent when addressed by digest. */
  subjectTag?: string;
  annotations?: Record<string, string>;
  onProgress?: ProgressFn;
}

/** Attaches one file to `subject` as an OCI 1.1 referrer (plus sidecar tag where needed). */
export async function attachFile(repo: OciRepository, subject: Descriptor, file: { name: string; data: Uint8Array }, opts: AttachOptions): Promise<PushedArtifact> {
  const pushed = await pushArtifact(repo, [{ name: basename(file.name), data: file.data, mediaType: opts.artifactType }], {
    artifactType: opts.artifactType,
    subject,
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
  await writeSidecars(repo, pushed.descriptor, pushed.manifest.mediaType, opts.artifactType, subject.digest, opts.subjectTag);
  return pushed;
}

/**
 * Stores an already-built referrer manifest the canonical way: referrer (API or
 * fallback index), plus cosign's `.sig` tag for signatures and the sidecar tag
 * for locks and bundles on stores without a referrers API.
 */
export async function publishReferrer(repo: OciRepository, bytes: Uint8Array, mediaType: string, subjectDigest: string, subjectTag?: string): Promise<Descriptor> {
  const desc = await pushReferrer(repo, bytes, mediaType);
  await writeSidecars(repo, desc, mediaType, desc.artifactType ?? "", subjectDigest, subjectTag, bytes);
  return desc;
}

async function writeSidecars(repo: OciRepository, desc: Descriptor, mediaType: string, artifactType: string, subjectDigest: string, subjectTag?: string, bytes?: Uint8Array): Promise<void> {
  const body = bytes ?? (await repo.getManifest(desc.digest)).bytes;
  if (artifactType === MediaTypes.cosignSignatureArtifact) {
    await repo.putManifest(body, mediaType, cosignSignatureTag(subjectDigest));
    return;
  }
  const tag = subjectTag === undefined ? undefined : sidecarTag(artifactType, subjectTag);
  if (tag !== undefined && !(await repo.capabilities()).referrersApi) await repo.putManifest(body, mediaType, tag);
}
