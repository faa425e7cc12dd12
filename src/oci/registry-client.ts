/**
 * An OCI distribution-spec (v2) registry as an {@link OciRepository}: blobs,
 * manifests, tags and the OCI 1.1 referrers API, with every read verified
 * against its digest. HTTP, auth and uploads live in registry-http.ts,
 * registry-auth.ts and registry-upload.ts.
 */
import { createHash } from "node:crypto";
import { drainVerified, verifiedChunks } from "./blob-stream.js";
import { safeEqual, sha256Digest, writeStreamAtomic } from "../lib/index.js";
import { OciError, tooManyReferrers } from "./errors.js";
import { assertDescriptor, MAX_MANIFEST_BYTES } from "./manifest.js";
import type { RegistryReference } from "./reference.js";
import { isDigest } from "./reference.js";
import { RegistryAuth } from "./registry-auth.js";
import { digestMismatch } from "./registry-errors.js";
import type { RegistryRequest, RegistryResponse } from "./registry-http.js";
import { RegistryTransport } from "./registry-http.js";
import { bytesSource, uploadBlob } from "./registry-upload.js";
import type { BlobSource } from "./registry-upload.js";
import { mkdtemp, open, rm } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EMPTY_JSON_DIGEST, MANIFEST_MEDIA_TYPES, MAX_REFERRER_PAGES, MAX_REFERRERS, MediaTypes } from "./types.js";
import type { Descriptor, FetchedManifest, OciRepository, ProgressFn, RepositoryCapabilities } from "./types.js";

export interface RegistryOptions {
  /** Speak plain HTTP instead of HTTPS (for a test registry on loopback). */
  plainHttp?: boolean;
  username?: string;
  password?: string;
  /** Idle timeout per request: the longest a request may go without progress. Default 30 s. */
  timeoutMs?: number;
  /** Blobs up to this size go in one PUT; larger ones in PATCH chunks of this size. Default 8 MiB. */
  chunkSize?: number;
  /** The fetch to use (tests wrap it to inject failures). Default: global fetch. */
  fetch?: typeof fetch;
  userAgent?: string;
  /** Largest blob getBlob accepts. Default 2 GiB. */
  maxBlobBytes?: number;
  /** putBlobFrom holds streamed blobs up to this size in memory and spools larger ones to a temp file. Default 256 MiB. */
  spoolAboveBytes?: number;
  /** Tags asked for per page of the tag list. Default 1000. */
  tagPageSize?: number;
}

/** putBlobFrom holds blobs up to this size in memory and spools larger ones to disk. */
export const SPOOL_ABOVE_BYTES = 256 * 1024 * 1024;

/** Largest blob getBlob accepts unless RegistryOptions.maxBlobBytes says otherwise. */
export const DEFAULT_MAX_BLOB_BYTES = 2 * 1024 * 1024 * 1024;
const DEFAULT_CHUNK = 8 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 30_000;
const UPLOAD_RETRIES = 3;
const UPLOAD_BACKOFF_MS = 100;
const MAX_PAGES = 10_000;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(", ");
/** Content types that say nothing about the manifest kind: trust the body's mediaType then. */
const GENERIC_TYPES: ReadonlySet<string> = new Set(["", "application/json", "text/plain", "application/octet-stream"]);

interface Settings {
  chunkSize: number;
  maxBlobBytes: number;
  spoolAboveBytes: number;
  tagPageSize: number;
}

/** Opens `ref`'s repository on its registry; no network traffic until the first call. */
export function openRegistryRepository(ref: RegistryReference, opts: RegistryOptions = {}): RegistryRepository {
  return new RegistryRepository(ref, opts);
}

export class RegistryRepository implements OciRepository {
  readonly location: string;
  readonly #http: RegistryTransport;
  readonly #settings: Readonly<Settings>;
  #capabilities: Promise<RepositoryCapabilities> | undefined;

  constructor(ref: RegistryReference, opts: RegistryOptions = {}) {
    const fetchFn = opts.fetch ?? globalThis.fetch;
    const timeoutMs = positive(opts.timeoutMs, DEFAULT_TIMEOUT_MS);
    const userAgent = opts.userAgent ?? "autonomyops-oci/0.1";
    const credentials = opts.username !== undefined && opts.password !== undefined ? { username: opts.username, password: opts.password } : undefined;
    const auth = new RegistryAuth({
      registry: ref.registry,
      fetch: fetchFn,
      timeoutMs,
      userAgent,
      allowPlainHttpRealm: opts.plainHttp === true,
      ...(credentials === undefined ? {} : { credentials }),
    });
    this.#http = new RegistryTransport({
      registry: ref.registry,
      repository: ref.repository,
      plainHttp: opts.plainHttp === true,
      fetch: fetchFn,
      timeoutMs,
      userAgent,
      auth,
    });
    this.location = this.#http.location;
    this.#settings = Object.freeze({
      chunkSize: positive(opts.chunkSize, DEFAULT_CHUNK),
      maxBlobBytes: positive(opts.maxBlobBytes, DEFAULT_MAX_BLOB_BYTES),
      spoolAboveBytes: positive(opts.spoolAboveBytes, SPOOL_ABOVE_BYTES),
      tagPageSize: positive(opts.tagPageSize, 1000),
    });
  }

  capabilities(): Promise<RepositoryCapabilities> {
    this.#capabilities ??= this.#probeReferrers().catch((e: unknown) => {
      this.#capabilities = undefined; // a failed probe is not an answer; ask again next time
      throw e;
    });
    return this.#capabilities;
  }

  async hasBlob(digest: string): Promise<boolean> {
    checkDigest(digest);
    const req: RegistryRequest = { method: "HEAD", url: `${this.#http.repoPath}/blobs/${digest}`, thing: `blob ${digest}` };
    const res = await this.#http.send(req);
    await res.discard();
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.#http.failure(res, req);
  }

  async getBlob(digest: string, opts: { expectedSize?: number; onProgress?: ProgressFn } = {}): Promise<Uint8Array> {
    const { res, limit, tooLarge } = await this.#openBlob(digest, opts);
    const total = opts.expectedSize ?? Number(res.header("content-length") ?? 0);
    const hash = createHash("sha256");
    const bytes = await res.bytes(limit, {
      tooLarge,
      onChunk: (chunk, done) => {
        hash.update(chunk);
        opts.onProgress?.(done, total);
      },
    });
    if (opts.expectedSize !== undefined && bytes.length !== opts.expectedSize) throw sizeMismatch(digest, opts.expectedSize, bytes.length);
    const actual = `sha256:${hash.digest("hex")}`;
    if (!safeEqual(actual, digest)) throw digestMismatch(`blob from ${this.location}`, digest, actual);
    return bytes;
  }

  async verifyBlob(digest: string, opts: { expectedSize?: number; onProgress?: ProgressFn } = {}): Promise<void> {
    await drainVerified(this.blobChunks(digest, opts));
  }

  async *blobChunks(digest: string, opts: { expectedSize?: number; onProgress?: ProgressFn } = {}): AsyncGenerator<Uint8Array> {
    const { res, limit, tooLarge } = await this.#openBlob(digest, opts);
    yield* verifiedChunks(res.chunks(limit, tooLarge), digest, this.location, opts);
  }

  /** The GET of a blob, with the size limit that applies and the error for going past it. */
  async #openBlob(digest: string, opts: { expectedSize?: number }): Promise<{ res: RegistryResponse; limit: number; tooLarge: (n: number) => OciError }> {
    checkDigest(digest);
    const limit = opts.expectedSize ?? this.#settings.maxBlobBytes;
    if (limit > this.#settings.maxBlobBytes) throw this.#tooLarge(digest, limit);
    const res = await this.#http.expect({ method: "GET", url: `${this.#http.repoPath}/blobs/${digest}`, thing: `blob ${digest}` }, [200]);
    const tooLarge = (n: number): OciError => (opts.expectedSize === undefined ? this.#tooLarge(digest, n) : sizeMismatch(digest, opts.expectedSize, n));
    return { res, limit, tooLarge };
  }

  async putBlob(data: Uint8Array, opts: { onProgress?: ProgressFn } = {}): Promise<string> {
    const digest = sha256Digest(data);
    if (await this.hasBlob(digest)) {
      opts.onProgress?.(data.length, data.length);
      return digest;
    }
    await this.#upload(bytesSource(data), digest, opts.onProgress);
    return digest;
  }

  /**
   * Stores a streamed blob, verified against `digest` before any byte is sent.
   * Up to `spoolAboveBytes` (256 MiB) it is held in memory; a larger one is spooled to a
   * private temp file (so a resumed or restarted upload session can re-read any
   * offset) and uploaded chunk by chunk from there: memory stays bounded
   * whatever the layer's size.
   */
  async putBlobFrom(digest: string, size: number, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    checkDigest(digest);
    if (await this.hasBlob(digest)) return;
    const verified = verifiedChunks(chunks, digest, "the copy source", { expectedSize: size });
    if (size <= this.#settings.spoolAboveBytes) {
      // Small enough to hold: skip the spool's extra write and read.
      const parts: Uint8Array[] = [];
      for await (const c of verified) parts.push(c);
      await this.#upload(bytesSource(Buffer.concat(parts, size)), digest);
      return;
    }
    const dir = await mkdtemp(join(tmpdir(), "autonomy-upload-"));
    try {
      const path = join(dir, "blob");
      await writeStreamAtomic(path, verified, 0o600);
      const fh = await open(path, "r");
      try {
        await this.#upload({ size, read: (offset, length) => readFully(fh, offset, length) }, digest);
      } finally {
        await fh.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  #upload(source: BlobSource, digest: string, onProgress?: ProgressFn): Promise<void> {
    return uploadBlob(this.#http, source, digest, {
      chunkSize: this.#settings.chunkSize,
      retries: UPLOAD_RETRIES,
      backoffMs: UPLOAD_BACKOFF_MS,
      hasBlob: (d) => this.hasBlob(d),
      ...(onProgress === undefined ? {} : { onProgress }),
    });
  }

  async getManifest(tagOrDigest: string): Promise<FetchedManifest> {
    checkTarget(tagOrDigest);
    const thing = `manifest "${tagOrDigest}"`;
    const res = await this.#http.expect({ method: "GET", url: this.#manifestPath(tagOrDigest), headers: { accept: MANIFEST_ACCEPT }, thing }, [200]);
    const bytes = await res.bytes(MAX_MANIFEST_BYTES, { tooLarge: (n) => manifestTooLarge(thing, n) });
    const mediaType = manifestMediaType(res.header("content-type"), bytes, thing);
    const digest = sha256Digest(bytes);
    this.#checkManifestDigest(tagOrDigest, digest, res.header("docker-content-digest"));
    return { bytes, mediaType, digest };
  }

  async putManifest(bytes: Uint8Array, mediaType: string, tag?: string): Promise<string> {
    if (!MANIFEST_MEDIA_TYPES.includes(mediaType)) throw unknownMediaType(mediaType, "the manifest to push");
    if (bytes.length > MAX_MANIFEST_BYTES) throw manifestTooLarge("the manifest to push", bytes.length);
    const digest = sha256Digest(bytes);
    const target = tag ?? digest;
    checkTarget(target);
    const res = await this.#http.expect(
      { method: "PUT", url: this.#manifestPath(target), headers: { "content-type": mediaType }, body: bytes, push: true, thing: `manifest "${target}"` },
      [200, 201, 204],
    );
    await res.discard();
    const theirs = res.header("docker-content-digest");
    if (theirs !== null && theirs !== digest) throw digestMismatch(`registry ${this.location} stored manifest "${target}"`, digest, theirs);
    return digest;
  }

  async resolve(tagOrDigest: string): Promise<Descriptor> {
    checkTarget(tagOrDigest);
    const thing = `manifest "${tagOrDigest}"`;
    const res = await this.#http.expect({ method: "HEAD", url: this.#manifestPath(tagOrDigest), headers: { accept: MANIFEST_ACCEPT }, thing }, [200]);
    await res.discard();
    const fromHead = this.#descriptorFromHead(tagOrDigest, res);
    if (fromHead !== undefined) return fromHead;
    // HEAD did not say enough (no digest, size or specific type): fetch and compute.
    const m = await this.getManifest(tagOrDigest);
    return { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length };
  }

  async listTags(): Promise<string[]> {
    const tags: string[] = [];
    let next: URL | undefined = new URL(`${this.#http.repoPath}/tags/list?n=${this.#settings.tagPageSize}`, this.#http.base);
    for (let page = 0; next !== undefined && page < MAX_PAGES; page++) {
      const req: RegistryRequest = { method: "GET", url: next, thing: "tag list" };
      const res = await this.#http.send(req);
      // A repository nobody pushed to yet is "unknown" to the registry: it has no tags.
      if (res.status === 404 && page === 0) {
        await res.discard();
        return [];
      }
      if (res.status !== 200) throw await this.#http.failure(res, req);
      const body = await this.#json(res, "tag list");
      tags.push(...tagsOf(body, this.location));
      next = nextLink(res.header("link"), res.url, next);
    }
    return tags;
  }

  async referrersNative(subjectDigest: string): Promise<Descriptor[]> {
    checkDigest(subjectDigest);
    const found: Descriptor[] = [];
    const visited = new Set<string>();
    let next: URL | undefined = new URL(`${this.#http.repoPath}/referrers/${subjectDigest}`, this.#http.base);
    while (next !== undefined) {
      // A lying registry can paginate for ever, or in a cycle (?p=a → ?p=b → ?p=a): both are bounded, never followed.
      if (visited.size >= MAX_REFERRER_PAGES || visited.has(next.href)) throw tooManyReferrers(this.location, subjectDigest, `more than ${visited.size} page(s) (bound ${MAX_REFERRER_PAGES}, or a page repeated)`);
      visited.add(next.href);
      const res = await this.#http.expect({ method: "GET", url: next, headers: { accept: MediaTypes.imageIndex }, thing: `referrers of ${subjectDigest}` }, [200]);
      const body = await this.#json(res, `referrers of ${subjectDigest}`);
      found.push(...descriptorsOf(body, this.location));
      if (found.length > MAX_REFERRERS) throw tooManyReferrers(this.location, subjectDigest, `${found.length}+ descriptors (bound ${MAX_REFERRERS})`);
      next = nextLink(res.header("link"), res.url, next);
    }
    return found;
  }

  #manifestPath(target: string): string {
    return `${this.#http.repoPath}/manifests/${target}`;
  }

  async #probeReferrers(): Promise<RepositoryCapabilities> {
    const req: RegistryRequest = { method: "GET", url: `${this.#http.repoPath}/referrers/${EMPTY_JSON_DIGEST}`, headers: { accept: MediaTypes.imageIndex }, thing: "referrers API probe" };
    const res = await this.#http.send(req);
    if (res.status !== 200) {
      await res.discard();
      return { referrersApi: false };
    }
    const bytes = await res.bytes(MAX_MANIFEST_BYTES, { tooLarge: (n) => manifestTooLarge("referrers index", n) });
    return { referrersApi: isImageIndex(res.header("content-type"), bytes) };
  }

  async #json(res: RegistryResponse, what: string): Promise<unknown> {
    const bytes = await res.bytes(MAX_MANIFEST_BYTES, { tooLarge: (n) => manifestTooLarge(what, n) });
    try {
      return JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    } catch (e) {
      throw new OciError("OCI_REGISTRY_ERROR", `registry ${this.location} sent a ${what} that is not JSON`, "check that the address points at an OCI distribution registry", { cause: e });
    }
  }

  #checkManifestDigest(target: string, actual: string, header: string | null): void {
    if (isDigest(target)) {
      if (!safeEqual(actual, target)) throw digestMismatch(`manifest from ${this.location}`, target, actual);
      return;
    }
    // By tag there is nothing to compare with but the registry's own claim.
    if (header !== null && isDigest(header) && !safeEqual(actual, header)) {
      throw digestMismatch(`manifest "${target}" from ${this.location}`, header, actual);
    }
  }

  #descriptorFromHead(target: string, res: RegistryResponse): Descriptor | undefined {
    const header = res.header("docker-content-digest");
    if (isDigest(target) && header !== null && isDigest(header) && !safeEqual(header, target)) {
      throw digestMismatch(`manifest from ${this.location}`, target, header);
    }
    const digest = isDigest(target) ? target : header;
    const size = Number(res.header("content-length") ?? Number.NaN);
    const mediaType = contentType(res.header("content-type"));
    if (digest === null || !isDigest(digest) || !Number.isSafeInteger(size) || size < 0 || GENERIC_TYPES.has(mediaType)) return undefined;
    if (!MANIFEST_MEDIA_TYPES.includes(mediaType)) throw unknownMediaType(mediaType, `manifest "${target}" in ${this.location}`);
    if (size > MAX_MANIFEST_BYTES) throw manifestTooLarge(`manifest "${target}"`, size);
    return { mediaType, digest, size };
  }

  #tooLarge(digest: string, size: number): OciError {
    return new OciError(
      "OCI_BLOB_TOO_LARGE",
      `blob ${digest} in ${this.location} is ${size} bytes, over the ${this.#settings.maxBlobBytes}-byte limit`,
      "raise the blob size limit if this blob is expected, otherwise do not pull it",
      { details: { digest, size, limit: this.#settings.maxBlobBytes } },
    );
  }
}

function positive(v: number | undefined, fallback: number): number {
  return v !== undefined && Number.isFinite(v) && v > 0 ? Math.floor(v) : fallback;
}

function checkDigest(digest: string): void {
  if (!isDigest(digest)) {
    throw new OciError("OCI_REFERENCE_INVALID", `"${digest.slice(0, 80)}" is not a sha256:<64 lowercase hex> digest`, "pass a digest such as sha256:<64 hex>");
  }
}

function checkTarget(target: string): void {
  if (target.startsWith("sha256:")) checkDigest(target);
  else if (!TAG_RE.test(target)) {
    throw new OciError("OCI_REFERENCE_INVALID", `"${target.slice(0, 80)}" is neither a tag nor a sha256 digest`, "tags are [A-Za-z0-9_][A-Za-z0-9._-]{0,127}; digests are sha256:<64 hex>");
  }
}

function contentType(header: string | null): string {
  return (header ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

/**
 * The manifest's media type: the Content-Type when it is specific, else the
 * body's `mediaType`. Both must be known, and must agree when both are given.
 */
function manifestMediaType(header: string | null, bytes: Uint8Array, thing: string): string {
  const fromHeader = contentType(header);
  const field = mediaTypeField(bytes, thing);
  const mediaType = GENERIC_TYPES.has(fromHeader) ? (field ?? "") : fromHeader;
  if (!MANIFEST_MEDIA_TYPES.includes(mediaType)) throw unknownMediaType(mediaType || "(none)", thing);
  if (field !== undefined && field !== mediaType) {
    throw new OciError("OCI_MANIFEST_INVALID", `${thing} is served as ${mediaType} but says it is ${field.slice(0, 100)}`, "re-push the manifest with a Content-Type matching its mediaType field");
  }
  return mediaType;
}

function mediaTypeField(bytes: Uint8Array, thing: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new OciError("OCI_MANIFEST_INVALID", `${thing} is not valid JSON`, "re-push the manifest from a trusted source", { cause: e });
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new OciError("OCI_MANIFEST_INVALID", `${thing} is not a JSON object`, "re-push the manifest from a trusted source");
  }
  const field = (parsed as { mediaType?: unknown }).mediaType;
  return typeof field === "string" ? field : undefined;
}

function isImageIndex(header: string | null, bytes: Uint8Array): boolean {
  if (contentType(header) === MediaTypes.imageIndex) return true;
  try {
    const body = JSON.parse(new TextDecoder().decode(bytes)) as { mediaType?: unknown; manifests?: unknown };
    return body.mediaType === MediaTypes.imageIndex && Array.isArray(body.manifests);
  } catch {
    return false;
  }
}

function unknownMediaType(mediaType: string, what: string): OciError {
  return new OciError(
    "OCI_MEDIA_TYPE_UNKNOWN",
    `${what} has media type ${mediaType.slice(0, 100)}, which is not one of: ${MANIFEST_MEDIA_TYPES.join(", ")}`,
    "push the artifact as an OCI image manifest or index (or a Docker v2 manifest / manifest list)",
    { details: { mediaType: mediaType.slice(0, 100) } },
  );
}

function manifestTooLarge(what: string, size: number): OciError {
  return new OciError(
    "OCI_MANIFEST_INVALID",
    `${what} is ${size} bytes, over the ${MAX_MANIFEST_BYTES}-byte manifest limit`,
    "refusing it; a manifest this large is malformed or hostile (content belongs in blobs)",
    { details: { size, limit: MAX_MANIFEST_BYTES } },
  );
}

function sizeMismatch(digest: string, expected: number, actual: number): OciError {
  return new OciError(
    "OCI_SIZE_MISMATCH",
    `blob ${digest}: expected ${expected} bytes, got ${actual > expected ? `more than ${expected}` : actual}`,
    "the content was altered in storage or in transit; do not use it, and re-push it from a trusted source",
    { details: { expected, actual } },
  );
}

function tagsOf(body: unknown, location: string): string[] {
  const tags = (body as { tags?: unknown } | null)?.tags;
  if (tags === null || tags === undefined) return [];
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === "string" && TAG_RE.test(t))) {
    throw new OciError("OCI_REGISTRY_ERROR", `registry ${location} sent a malformed tag list`, "check that the address points at an OCI distribution registry");
  }
  return tags as string[];
}

function descriptorsOf(body: unknown, location: string): Descriptor[] {
  const manifests = (body as { manifests?: unknown } | null)?.manifests;
  if (manifests === undefined || manifests === null) return [];
  if (!Array.isArray(manifests)) {
    throw new OciError("OCI_MANIFEST_INVALID", `registry ${location} sent a referrers index whose manifests is not a list`, "check the registry's referrers API implementation");
  }
  manifests.forEach((d: unknown, i) => assertDescriptor(d, `referrers index from ${location}, manifests[${i}]`));
  return manifests as Descriptor[];
}

/** The `rel="next"` target of a Link header (RFC 8288), resolved against the page it came with. */
function nextLink(header: string | null, base: URL, current: URL): URL | undefined {
  if (header === null) return undefined;
  for (const m of header.matchAll(/<([^>]*)>\s*((?:;\s*[^;,]*)*)/g)) {
    const params = m[2] ?? "";
    if (!/;\s*rel\s*=\s*"?([^";]*\s)?next(\s[^";]*)?"?/i.test(params)) continue;
    const next = new URL(m[1] ?? "", base);
    // Stay on the same server and never loop on one page.
    if (next.origin !== current.origin || next.href === current.href) return undefined;
    return next;
  }
  return undefined;
}

/** `length` bytes at `offset` (the spool file is ours and complete: a short read is an I/O error). */
async function readFully(fh: FileHandle, offset: number, length: number): Promise<Uint8Array> {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
    if (bytesRead === 0) throw new OciError("OCI_LAYOUT_INVALID", `upload spool file ended at ${offset + got} of ${offset + length} bytes`, "check the temp directory's disk, then retry");
    got += bytesRead;
  }
  return buf;
}
