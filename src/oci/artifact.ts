import { basename } from "node:path";
import { encodeManifest } from "./manifest.js";
import { pushReferrer } from "./referrers.js";
import { EMPTY_JSON, MediaTypes } from "./types.js";
import type { Descriptor, ImageManifest, OciRepository, ProgressFn } from "./types.js";

export interface ArtifactFile {
  /** Name recorded as `org.opencontainers.image.title`. */
  name: string;
  data: Uint8Array;
  mediaType?: string;
}

export interface PushArtifactOptions {
  artifactType: string;
  tag?: string;
  /** When set, the manifest is a referrer of this descriptor. */
  subject?: Descriptor;
  annotations?: Record<string, string>;
  onProgress?: ProgressFn;
}

export interface PushedArtifact {
  digest: string;
  descriptor: Descriptor;
  manifest: ImageManifest;
}

/**
 * Pushes files as an OCI 1.1 artifact: empty config, one layer per file, an
 * `artifactType`, optionally a `subject`. Referrers go through pushReferrer so
 * registries without the referrers API get the fallback index too.
 */
export async function pushArtifact(repo: OciRepository, files: readonly ArtifactFile[], opts: PushArtifactOptions): Promise<PushedArtifact> {
  const total = files.reduce((n, f) => n + f.data.byteLength, EMPTY_JSON.byteLength);
  let done = 0;
  const step = (n: number): void => {
    done += n;
    opts.onProgress?.(done, total);
  };
  const config: Descriptor = { mediaType: MediaTypes.empty, digest: await repo.putBlob(EMPTY_JSON), size: EMPTY_JSON.byteLength };
  step(EMPTY_JSON.byteLength);
  const layers: Descriptor[] = [];
  for (const f of files) {
    const digest = await repo.putBlob(f.data);
    step(f.data.byteLength);
    layers.push({ mediaType: f.mediaType ?? MediaTypes.octetStream, digest, size: f.data.byteLength, annotations: { "org.opencontainers.image.title": basename(f.name) } });
  }
  const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaTypes.imageManifest, artifactType: opts.artifactType, config, layers };
  if (opts.subject) manifest.subject = { mediaType: opts.subject.mediaType, digest: opts.subject.digest, size: opts.subject.size };
  if (opts.annotations && Object.keys(opts.annotations).length > 0) manifest.annotations = { ...opts.annotations };
  return storeManifest(repo, manifest, opts.tag);
}

/** Stores a manifest (as a referrer when it has a subject), optionally tagged. */
export async function storeManifest(repo: OciRepository, manifest: ImageManifest, tag?: string): Promise<PushedArtifact> {
  const { bytes, digest, descriptor } = encodeManifest(manifest);
  if (manifest.subject) await pushReferrer(repo, bytes, manifest.mediaType);
  if (!manifest.subject || tag !== undefined) await repo.putManifest(bytes, manifest.mediaType, tag);
  return { digest, descriptor, manifest };
}
