import { constants } from "node:fs";
import { open, readFile, mkdir, stat } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { OciError, tooManyReferrers } from "./errors.js";
import { effectiveArtifactType, MAX_MANIFEST_BYTES, parseManifest } from "./manifest.js";
import { MAX_REFERRERS, MediaTypes } from "./types.js";
import type { Descriptor, FetchedManifest, ImageIndex, OciRepository, ProgressFn, ReferrersOptions, RepositoryCapabilities } from "./types.js";
import { errnoCode, isSha256Digest, sha256Digest, writeFileAtomic, writeStreamAtomic } from "../lib/index.js";
import { drainVerified, verifiedChunks } from "./blob-stream.js";

const REF_NAME = "org.opencontainers.image.ref.name";
const LAYOUT_FILE = JSON.stringify({ imageLayoutVersion: "1.0.0" });

/**
 * An OCI image-layout directory (image-spec "image-layout"), readable by skopeo
 * and umoci as `oci:DIR:TAG`. Tags are `org.opencontainers.image.ref.name`
 * annotations in index.json; untagged manifests (referrers) are listed there
 * too so they are never garbage. Writes are durable (temp → fsync → rename →
 * fsync dir). One writer per directory at a time: index.json updates are
 * serialised within this process only.
 */
export class LayoutRepository implements OciRepository {
  readonly location: string;
  readonly #dir: string;
  #indexQueue: Promise<unknown> = Promise.resolve();

  constructor(dir: string) {
    this.#dir = dir;
    this.location = `oci:${dir}`;
  }

  capabilities(): Promise<RepositoryCapabilities> {
    // Referrers are answered by scanning index.json: a native query, no fallback tags needed.
    return Promise.resolve({ referrersApi: true });
  }

  #blobPath(digest: string): string {
    if (!isSha256Digest(digest)) {
      throw new OciError("OCI_REFERENCE_INVALID", `invalid digest "${digest}"`, "digests are sha256:<64 lowercase hex>");
    }
    return join(this.#dir, "blobs", "sha256", digest.slice(7));
  }

  async hasBlob(digest: string): Promise<boolean> {
    try {
      return (await stat(this.#blobPath(digest))).isFile();
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return false;
      throw e;
    }
  }

  async getBlob(digest: string, opts: { expectedSize?: number; onProgress?: ProgressFn; maxBytes?: number } = {}): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    for await (const chunk of this.blobChunks(digest, opts)) parts.push(chunk);
    return Buffer.concat(parts);
  }

  async verifyBlob(digest: string, opts: { expectedSize?: number; onProgress?: ProgressFn } = {}): Promise<void> {
    await drainVerified(this.blobChunks(digest, opts));
  }

  /**
   * Streams a blob file, verified. The layout may be an air-gapped copy someone
   * else could write to: the file is opened without following a symlink and
   * without blocking (a FIFO would hang the reader for ever), must be a regular
   * file, and its size must match the descriptor (or `maxBytes`) before one byte is read.
   */
  blobChunks(digest: string, opts: { expectedSize?: number; onProgress?: ProgressFn; maxBytes?: number } = {}): AsyncIterable<Uint8Array> {
    const path = this.#blobPath(digest);
    const location = this.location;
    const raw = async function* (): AsyncGenerator<Uint8Array> {
      const fh = await openBlobFile(path, location, digest, opts);
      try {
        yield* fh.createReadStream({ autoClose: false }) as AsyncIterable<Buffer>;
      } catch (e) {
        throw layoutIo(location, e);
      } finally {
        await fh.close();
      }
    };
    return verifiedChunks(raw(), digest, location, opts);
  }

  async putBlobFrom(digest: string, size: number, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const path = this.#blobPath(digest);
    await this.#ensureLayout();
    if (await this.hasBlob(digest)) return;
    // Verified here too: whatever the caller's stream claims, only content matching the digest is committed.
    await writeStreamAtomic(path, verifiedChunks(chunks, digest, this.location, { expectedSize: size }));
  }

  async putBlob(data: Uint8Array, opts: { onProgress?: ProgressFn } = {}): Promise<string> {
    const digest = sha256Digest(data);
    await this.#ensureLayout();
    if (!(await this.hasBlob(digest))) await writeFileAtomic(this.#blobPath(digest), data);
    opts.onProgress?.(data.byteLength, data.byteLength);
    return digest;
  }

  async getManifest(tagOrDigest: string): Promise<FetchedManifest> {
    const desc = await this.resolve(tagOrDigest);
    const bytes = await this.getBlob(desc.digest, { expectedSize: desc.size });
    const parsed = parseManifest(bytes, desc.mediaType);
    return { bytes, mediaType: parsed.mediaType, digest: desc.digest };
  }

  async putManifest(bytes: Uint8Array, mediaType: string, tag?: string): Promise<string> {
    const parsed = parseManifest(bytes, mediaType);
    const digest = await this.putBlob(bytes);
    const entry: Descriptor = { mediaType: parsed.mediaType, digest, size: bytes.byteLength };
    const artifactType = effectiveArtifactType(parsed);
    if (parsed.value.artifactType !== undefined) entry.artifactType = artifactType;
    await this.#updateIndex((index) => upsertEntry(index, entry, tag));
    return digest;
  }

  async resolve(tagOrDigest: string): Promise<Descriptor> {
    const index = await this.#readIndex();
    if (isSha256Digest(tagOrDigest)) {
      const listed = index.manifests.find((d) => d.digest === tagOrDigest);
      if (listed) return stripRefName(listed);
      const bytes = await this.getBlob(tagOrDigest, { maxBytes: MAX_MANIFEST_BYTES });
      return { mediaType: parseManifest(bytes).mediaType, digest: tagOrDigest, size: bytes.byteLength };
    }
    const hit = index.manifests.find((d) => d.annotations?.[REF_NAME] === tagOrDigest);
    if (!hit) throw notFound(this.location, `tag "${tagOrDigest}"`);
    return stripRefName(hit);
  }

  async listTags(): Promise<string[]> {
    const index = await this.#readIndex(true);
    return index.manifests.map((d) => d.annotations?.[REF_NAME]).filter((t): t is string => t !== undefined).sort();
  }

  async referrersNative(subjectDigest: string, opts: ReferrersOptions = {}): Promise<Descriptor[]> {
    const index = await this.#readIndex(true);
    const out: Descriptor[] = [];
    const seen = new Set<string>();
    for (const d of index.manifests) {
      if (seen.has(d.digest) || (d.mediaType !== MediaTypes.imageManifest && d.mediaType !== MediaTypes.imageIndex)) continue;
      seen.add(d.digest);
      const ref = await this.#referrerEntry(d, subjectDigest, opts);
      if (ref === undefined) continue;
      out.push(ref);
      if (out.length > MAX_REFERRERS) throw tooManyReferrers(this.location, subjectDigest, `${out.length}+ descriptors (bound ${MAX_REFERRERS})`);
    }
    return out;
  }

  /** One index.json entry as a referrer of `subject`; an entry that cannot be read is skipped on its own (told to onSkip), never the whole listing. */
  async #referrerEntry(d: Descriptor, subjectDigest: string, opts: ReferrersOptions): Promise<Descriptor | undefined> {
    try {
      const parsed = parseManifest(await this.getBlob(d.digest, { expectedSize: d.size, maxBytes: MAX_MANIFEST_BYTES }), d.mediaType);
      if (parsed.value.subject?.digest !== subjectDigest) return undefined;
      const ref: Descriptor = { mediaType: parsed.mediaType, digest: d.digest, size: d.size, artifactType: effectiveArtifactType(parsed) };
      if (parsed.value.annotations) ref.annotations = { ...parsed.value.annotations };
      return ref;
    } catch (e) {
      if (!(e instanceof OciError)) throw e;
      opts.onSkip?.(d.digest, `index.json entry skipped: ${e.code}: ${e.message}`);
      return undefined;
    }
  }

  async #readIndex(allowMissing = false): Promise<ImageIndex> {
    let raw: Uint8Array;
    try {
      raw = await readIndexFile(join(this.#dir, "index.json"), this.location);
    } catch (e) {
      if (e instanceof OciError) throw e;
      if (errnoCode(e) === "ENOENT") {
        if (allowMissing) return emptyIndex();
        throw new OciError("OCI_NOT_FOUND", `${this.location} is not an OCI image layout (no index.json)`, "check the directory, or push to it first");
      }
      throw layoutIo(this.location, e);
    }
    const parsed = parseManifest(raw, MediaTypes.imageIndex);
    if (parsed.kind !== "index") throw new OciError("OCI_LAYOUT_INVALID", `${this.location}/index.json is not an image index`, "repair or recreate the layout");
    return parsed.value;
  }

  async #ensureLayout(): Promise<void> {
    await mkdir(join(this.#dir, "blobs", "sha256"), { recursive: true });
    const marker = join(this.#dir, "oci-layout");
    try {
      const v = JSON.parse(await readFile(marker, "utf8")) as { imageLayoutVersion?: unknown };
      if (v.imageLayoutVersion !== "1.0.0") throw new OciError("OCI_LAYOUT_INVALID", `${marker}: unsupported imageLayoutVersion`, "only image-layout 1.0.0 is supported");
    } catch (e) {
      if (e instanceof OciError) throw e;
      if (errnoCode(e) !== "ENOENT") throw new OciError("OCI_LAYOUT_INVALID", `${marker} is unreadable or not JSON`, "repair or recreate the layout", { cause: e });
      await writeFileAtomic(marker, LAYOUT_FILE);
      await writeFileAtomic(join(this.#dir, "index.json"), JSON.stringify(emptyIndex()));
    }
  }

  /** Read-modify-write of index.json, serialised so concurrent pushes in one process never lose an entry. */
  #updateIndex(change: (index: ImageIndex) => ImageIndex): Promise<void> {
    const run = this.#indexQueue.then(async () => {
      await this.#ensureLayout();
      const next = change(await this.#readIndex());
      await writeFileAtomic(join(this.#dir, "index.json"), JSON.stringify(next));
    });
    this.#indexQueue = run.catch(() => undefined);
    return run;
  }
}

function emptyIndex(): ImageIndex {
  return { schemaVersion: 2, mediaType: MediaTypes.imageIndex, manifests: [] };
}

/** A tag moves to the new manifest; an untagged manifest is listed once. */
function upsertEntry(index: ImageIndex, entry: Descriptor, tag?: string): ImageIndex {
  let manifests = index.manifests;
  if (tag !== undefined) {
    manifests = manifests.filter((d) => d.annotations?.[REF_NAME] !== tag);
    manifests.push({ ...entry, annotations: { [REF_NAME]: tag } });
  } else if (!manifests.some((d) => d.digest === entry.digest)) {
    manifests.push(entry);
  }
  return { ...index, manifests };
}

function stripRefName(d: Descriptor): Descriptor {
  const { annotations: _a, ...rest } = d;
  return rest;
}

function notFound(location: string, what: string): OciError {
  return new OciError("OCI_NOT_FOUND", `${what} not found in ${location}`, "check the reference; `autonomy oci referrers` and the layout's index.json list what is there");
}

export function digestMismatch(location: string, expected: string, actual: string): OciError {
  return new OciError("OCI_DIGEST_MISMATCH", `content at ${location} does not match its digest: expected ${expected}, got ${actual}`,
    "the content was tampered with or corrupted; do not use it, re-copy from a trusted source", { details: { expected, actual } });
}

/** O_NOFOLLOW | O_NONBLOCK, then fstat: only a regular file of the expected size (or within maxBytes) is handed back, open. */
async function openBlobFile(path: string, location: string, digest: string, opts: { expectedSize?: number | undefined; maxBytes?: number | undefined }): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    if (errnoCode(e) === "ENOENT") throw notFound(location, `blob ${digest}`);
    if (errnoCode(e) === "ELOOP") throw new OciError("OCI_LAYOUT_INVALID", `blob ${digest} in ${location} is a symbolic link`, "blobs must be regular files; re-copy the artifact from a trusted source");
    throw layoutIo(location, e);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new OciError("OCI_LAYOUT_INVALID", `blob ${digest} in ${location} is not a regular file`, "blobs must be regular files; re-copy the artifact from a trusted source");
    if (opts.expectedSize !== undefined && st.size !== opts.expectedSize) {
      throw new OciError("OCI_SIZE_MISMATCH", `blob ${digest} in ${location} is ${st.size} bytes, expected ${opts.expectedSize}`,
        "the blob is truncated or replaced; re-copy the artifact from a trusted source", { details: { expected: opts.expectedSize, actual: st.size } });
    }
    if (opts.maxBytes !== undefined && st.size > opts.maxBytes) {
      throw new OciError("OCI_BLOB_TOO_LARGE", `blob ${digest} in ${location} is ${st.size} bytes, over the ${opts.maxBytes}-byte limit for what is read here`, "the blob is not what it should be; re-copy the artifact from a trusted source");
    }
    return fh;
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** index.json, opened without blocking (a FIFO would hang every reader): a regular file within the manifest size limit. */
async function readIndexFile(path: string, location: string): Promise<Uint8Array> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > MAX_MANIFEST_BYTES) {
      throw new OciError("OCI_LAYOUT_INVALID", `${location}/index.json is not a regular file of at most ${MAX_MANIFEST_BYTES} bytes`, "repair or recreate the layout");
    }
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

function layoutIo(location: string, cause: unknown): OciError {
  return new OciError("OCI_LAYOUT_INVALID", `cannot read ${location}: ${errnoCode(cause) ?? String(cause)}`, "check the directory exists and is readable", { cause });
}
