/**
 * OCI data model (image-spec 1.1) and the one repository interface that both the
 * image-layout store and the distribution-registry client implement, so copy,
 * attach, referrers and verification are written once.
 */
export const MediaTypes = {
  imageManifest: "application/vnd.oci.image.manifest.v1+json",
  imageIndex: "application/vnd.oci.image.index.v1+json",
  imageConfig: "application/vnd.oci.image.config.v1+json",
  empty: "application/vnd.oci.empty.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  layerTar: "application/vnd.oci.image.layer.v1.tar",
  layerTarGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  octetStream: "application/octet-stream",
  /** Activation lock attached to an agent image. */
  lock: "application/vnd.autonomyops.lock.v1+json",
  /** Policy bundle (.tar.gz) attached to an agent image. */
  policyBundle: "application/vnd.autonomyops.policy-bundle.v1+tar",
  /** cosign's simple-signing payload layer. */
  cosignSimpleSigning: "application/vnd.dev.cosign.simplesigning.v1+json",
  /** artifactType cosign uses for signatures stored as OCI 1.1 referrers. */
  cosignSignatureArtifact: "application/vnd.dev.cosign.artifact.sig.v1+json",
  /** A DSSE envelope stored as a layer (cosign's attestation layer type). */
  dsseEnvelope: "application/vnd.dsse.envelope.v1+json",
  /** artifactType of our release-statement referrers (one layer: the DSSE envelope of the in-toto statement). */
  releaseStatement: "application/vnd.autonomyops.release-statement.v1+dsse",
} as const;

/** Manifest media types this product reads; anything else is refused. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  MediaTypes.imageManifest,
  MediaTypes.imageIndex,
  MediaTypes.dockerManifest,
  MediaTypes.dockerManifestList,
];

export const EMPTY_JSON = new TextEncoder().encode("{}");
export const EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  urls?: string[];
  platform?: Record<string, unknown>;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** A manifest as fetched: the exact bytes (digests are over bytes) plus what they say. */
export interface FetchedManifest {
  bytes: Uint8Array;
  mediaType: string;
  digest: string;
}

/** Progress callback for long transfers: bytes done so far of `total`. */
export type ProgressFn = (done: number, total: number) => void;

export interface RepositoryCapabilities {
  /** True when the store answers the OCI 1.1 referrers query natively. */
  readonly referrersApi: boolean;
}

/**
 * One repository in a store (an image-layout directory or `host/repo` on a
 * registry). Every read verifies the digest of what it returns; every method
 * throws OciError with a stable code.
 */
export interface OciRepository {
  /** Human-readable location for messages, e.g. `oci:/tmp/x` or `127.0.0.1:5000/agent`. */
  readonly location: string;
  /** Capabilities, probed once and cached (registries answer 404 to the referrers API). */
  capabilities(): Promise<RepositoryCapabilities>;

  hasBlob(digest: string): Promise<boolean>;
  /** Returns the blob, verified against `digest`; throws OCI_DIGEST_MISMATCH otherwise. */
  getBlob(digest: string, opts?: { expectedSize?: number; onProgress?: ProgressFn }): Promise<Uint8Array>;
  /**
   * Reads the blob and checks it against `digest` (and `expectedSize`) without
   * keeping it: memory is one chunk, whatever the blob's size. Same errors as getBlob.
   */
  verifyBlob(digest: string, opts?: { expectedSize?: number; onProgress?: ProgressFn }): Promise<void>;
  /**
   * The blob as a stream of chunks, verified as it flows (verifiedChunks): it
   * throws instead of ending when size or digest do not match, so commit
   * nothing until the iteration has completed.
   */
  blobChunks(digest: string, opts?: { expectedSize?: number; onProgress?: ProgressFn }): AsyncIterable<Uint8Array>;
  /** Stores a blob from a stream (verified against `digest` before it is committed), when the store can write one without buffering it. */
  putBlobFrom?(digest: string, size: number, chunks: AsyncIterable<Uint8Array>): Promise<void>;
  /** Stores a blob (no-op when present); returns its digest. */
  putBlob(data: Uint8Array, opts?: { onProgress?: ProgressFn }): Promise<string>;

  /** Fetches a manifest by tag or digest. By digest, the bytes are verified. */
  getManifest(tagOrDigest: string): Promise<FetchedManifest>;
  /** Stores manifest bytes, optionally under a tag; returns the digest. */
  putManifest(bytes: Uint8Array, mediaType: string, tag?: string): Promise<string>;
  /** Resolves a tag (or digest) to the manifest's descriptor without fetching the body where possible. */
  resolve(tagOrDigest: string): Promise<Descriptor>;
  listTags(): Promise<string[]>;

  /**
   * Native OCI 1.1 referrers query. Only called when capabilities().referrersApi
   * is true; the fallback tag schema is handled once, in referrers.ts.
   * Bounded (a hostile registry can paginate for ever): more than
   * {@link MAX_REFERRERS} descriptors or {@link MAX_REFERRER_PAGES} pages is
   * OCI_TOO_MANY_REFERRERS, so callers that must see every candidate fail closed.
   */
  referrersNative(subjectDigest: string, opts?: ReferrersOptions): Promise<Descriptor[]>;
}

export interface ReferrersOptions {
  /** Told about each listed entry a store cannot read (a layout's broken index entry): skipped, the rest still listed. */
  onSkip?: (digest: string, reason: string) => void;
}

/** At most this many referrer descriptors are held for one subject (4 × 32 statement candidates, with room for signatures and attachments). */
export const MAX_REFERRERS = 128;
/** At most this many pages of a referrers answer are fetched (each page is capped at the manifest size limit). */
export const MAX_REFERRER_PAGES = 16;
