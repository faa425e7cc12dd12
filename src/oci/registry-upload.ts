/**
 * Blob upload per the distribution spec: POST opens a session, then either one
 * PUT with the whole body (small blobs) or PATCH chunks and a closing PUT. We
 * never use the single-POST monolithic upload: Debian's docker-registry 2.8
 * does not support it. A failed step is retried a bounded number of times,
 * resuming from the offset the registry reports when the session survived and
 * starting a new session when it did not (2.8 invalidates a session's
 * Location once any PATCH on it landed, even if we never saw the answer).
 */
import { OciError } from "./errors.js";
import { digestMismatch } from "./registry-errors.js";
import type { RegistryTransport } from "./registry-http.js";
import type { ProgressFn } from "./types.js";

export interface UploadOptions {
  chunkSize: number;
  /** How many failed steps to retry before giving up. */
  retries: number;
  /** First backoff delay; doubles per retry. */
  backoffMs: number;
  /** Checks whether the blob already landed (a lost answer to the final PUT). */
  hasBlob: (digest: string) => Promise<boolean>;
  onProgress?: ProgressFn;
}

/** What an upload reads from: random access, so a resumed session can continue from any offset. */
export interface BlobSource {
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** A source over bytes already in memory. */
export function bytesSource(data: Uint8Array): BlobSource {
  return { size: data.length, read: (offset, length) => Promise.resolve(data.subarray(offset, offset + length)) };
}

interface Session {
  location: URL;
  /** Bytes the registry has confirmed. */
  offset: number;
}

const OCTET = "application/octet-stream";

/** Uploads `data` (whose digest is `digest`) into the transport's repository; memory is one chunk of it. */
export async function uploadBlob(http: RegistryTransport, data: BlobSource, digest: string, opts: UploadOptions): Promise<void> {
  let session: Session | undefined;
  let failures = 0;
  for (;;) {
    try {
      session ??= await openSession(http);
      await sendFrom(http, session, data, digest, opts);
      opts.onProgress?.(data.size, data.size);
      return;
    } catch (e) {
      if (!isRetryable(e) || failures >= opts.retries) throw e;
      failures++;
      await sleep(opts.backoffMs * 2 ** (failures - 1));
      if (await opts.hasBlob(digest).catch(() => false)) return;
      session = session === undefined ? undefined : await recoverSession(http, session);
    }
  }
}

async function sendFrom(http: RegistryTransport, s: Session, data: BlobSource, digest: string, opts: UploadOptions): Promise<void> {
  if (s.offset === 0 && data.size <= opts.chunkSize) {
    await closeSession(http, s, digest, await data.read(0, data.size));
    return;
  }
  while (s.offset < data.size) {
    await patchChunk(http, s, await data.read(s.offset, Math.min(opts.chunkSize, data.size - s.offset)), data.size);
    opts.onProgress?.(s.offset, data.size);
  }
  await closeSession(http, s, digest);
}

async function openSession(http: RegistryTransport): Promise<Session> {
  const res = await http.expect({ method: "POST", url: `${http.repoPath}/blobs/uploads/`, push: true, thing: "blob upload" }, [202]);
  await res.discard();
  return { location: locationOf(http, res.header("location"), res.url), offset: 0 };
}

/** One PATCH with `Content-Range: start-end` (inclusive); the registry's Range says what it now holds. */
async function patchChunk(http: RegistryTransport, s: Session, chunk: Uint8Array, total: number): Promise<void> {
  const end = s.offset + chunk.length;
  const res = await http.expect(
    {
      method: "PATCH",
      url: s.location,
      push: true,
      thing: "blob upload chunk",
      headers: { "content-type": OCTET, "content-range": `${s.offset}-${end - 1}` },
      body: chunk,
    },
    [202, 204],
  );
  await res.discard();
  const held = heldBytes(res.header("range"), end);
  if (held > total) {
    throw new OciError("OCI_REGISTRY_ERROR", `registry ${http.location} claims ${held} bytes of a ${total}-byte upload`, "retry the push; if it persists, the registry is misbehaving");
  }
  s.location = locationOf(http, res.header("location") ?? s.location.href, res.url);
  s.offset = held;
}

/** The closing PUT `?digest=` (with the whole body for a single-request upload). */
async function closeSession(http: RegistryTransport, s: Session, digest: string, body?: Uint8Array): Promise<void> {
  const url = new URL(s.location);
  url.searchParams.set("digest", digest);
  const res = await http.expect(
    { method: "PUT", url, push: true, thing: `blob ${digest}`, headers: { "content-type": OCTET }, body: body ?? new Uint8Array(0) },
    [201, 204],
  );
  await res.discard();
  const theirs = res.header("docker-content-digest");
  if (theirs !== null && theirs !== digest) throw digestMismatch(`registry ${http.location} stored the upload`, digest, theirs);
}

/**
 * Asks the registry how much of the session it holds (GET on the Location).
 * Returns undefined when the session is gone or went backwards: start over.
 */
async function recoverSession(http: RegistryTransport, s: Session): Promise<Session | undefined> {
  try {
    const res = await http.send({ method: "GET", url: s.location, push: true, thing: "blob upload status" });
    await res.discard();
    if (res.status !== 204 && res.status !== 200) return undefined;
    const held = heldBytes(res.header("range"), s.offset === 0 ? 0 : 1);
    if (held < s.offset) return undefined;
    return { location: locationOf(http, res.header("location") ?? s.location.href, res.url), offset: held };
  } catch (e) {
    if (e instanceof OciError && e.code === "OCI_AUTH_FAILED") throw e;
    return undefined;
  }
}

/**
 * Bytes held according to a `Range: 0-<last>` header. `0-0` is ambiguous in
 * distribution (it means both "empty" and "one byte"), so the caller says what
 * it expects there; a missing header means nothing is known, treat as `fallback`.
 */
function heldBytes(range: string | null, fallback: number): number {
  const m = range === null ? null : /^(?:bytes=)?0-(\d+)$/.exec(range.trim());
  if (m === null || m[1] === undefined) return fallback;
  const last = Number(m[1]);
  return last === 0 ? Math.min(fallback, 1) : last + 1;
}

function locationOf(http: RegistryTransport, location: string | null, base: URL): URL {
  if (location === null) {
    throw new OciError("OCI_REGISTRY_ERROR", `registry ${http.location} opened an upload without a Location header`, "the registry does not follow the distribution spec; try another registry");
  }
  return new URL(location, base);
}

/** Network failures, 5xx, 416 and a vanished session are worth another try. */
function isRetryable(e: unknown): boolean {
  if (!(e instanceof OciError)) return false;
  if (e.code === "OCI_REGISTRY_UNREACHABLE" || e.code === "OCI_NOT_FOUND") return true;
  const status = e.details.status;
  return e.code === "OCI_REGISTRY_ERROR" && typeof status === "number" && (status >= 500 || status === 416);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
