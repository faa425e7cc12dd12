import { createHash } from "node:crypto";
import { safeEqual } from "../lib/index.js";
import { OciError } from "./errors.js";
import type { ProgressFn } from "./types.js";

/**
 * Passes `chunks` through while hashing and counting them: more bytes than
 * `expectedSize` stops the stream at once (OCI_SIZE_MISMATCH); at the end the
 * size and SHA-256 must match, or the stream throws instead of ending
 * (OCI_DIGEST_MISMATCH). A consumer therefore commits nothing until the
 * iteration has completed without error.
 */
export async function* verifiedChunks(chunks: AsyncIterable<Uint8Array>, digest: string, where: string, opts: { expectedSize?: number | undefined; onProgress?: ProgressFn | undefined } = {}): AsyncGenerator<Uint8Array> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of chunks) {
    size += chunk.byteLength;
    if (opts.expectedSize !== undefined && size > opts.expectedSize) throw sizeMismatch(digest, where, opts.expectedSize, size);
    hash.update(chunk);
    opts.onProgress?.(size, opts.expectedSize ?? size);
    yield chunk;
  }
  if (opts.expectedSize !== undefined && size !== opts.expectedSize) throw sizeMismatch(digest, where, opts.expectedSize, size);
  const actual = `sha256:${hash.digest("hex")}`;
  if (!safeEqual(actual, digest)) {
    throw new OciError("OCI_DIGEST_MISMATCH", `blob from ${where}: expected digest ${digest}, got ${actual}`,
      "the content was altered in storage or in transit; do not use it, and re-copy it from a trusted source", { details: { expected: digest, actual } });
  }
}

function sizeMismatch(digest: string, where: string, expected: number, actual: number): OciError {
  return new OciError("OCI_SIZE_MISMATCH", `blob ${digest} from ${where}: expected ${expected} bytes, got ${actual > expected ? `more than ${expected}` : actual}`,
    "the content was altered in storage or in transit; do not use it, and re-copy it from a trusted source", { details: { expected, actual } });
}

/** Runs a verified stream to its end, keeping nothing: what verifyBlob is. */
export async function drainVerified(chunks: AsyncIterable<Uint8Array>): Promise<void> {
  for await (const chunk of chunks) void chunk;
}
