import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";
import type { SegmentId } from "../types.js";

/**
 * Buffers whose SHA-256 was computed, as their bytes were copied in, by a
 * SegmentAssembler of this module, and matched the id they are mapped to.
 * Only the assembler adds to it. The segment store takes the id from here
 * instead of copying and hashing the bytes a second time: the relay receiver
 * assembles each segment in one pass (copy + hash) and its sink puts that
 * buffer. Whoever holds a verified buffer must not modify it (the receiver
 * hands it to the sink and drops it); `get` and open re-hash every read, so
 * even a bug that did would be caught as SEGMENT_CORRUPT, never served.
 */
const verified = new WeakMap<Uint8Array, SegmentId>();

/** The id a SegmentAssembler verified for exactly this buffer, if any. */
export function verifiedIdOf(bytes: Uint8Array): SegmentId | undefined {
  return verified.get(bytes);
}

/**
 * Collects a segment of a known size from chunks into one buffer of its own,
 * hashing each chunk as it is copied (one pass over the bytes), and hands the
 * buffer out once, verified against the expected id.
 */
export class SegmentAssembler {
  readonly #hash: Hash = createHash("sha256");
  readonly #buf: Buffer;
  #at = 0;
  #done = false;

  constructor(readonly size: number) {
    this.#buf = Buffer.allocUnsafe(size);
  }

  /** Bytes received so far. */
  get received(): number {
    return this.#at;
  }

  /** Copies and hashes one chunk; false (nothing taken) when it would run past `size` or after finish. */
  append(chunk: Uint8Array): boolean {
    if (this.#done || this.#at + chunk.byteLength > this.size) return false;
    this.#hash.update(chunk);
    this.#buf.set(chunk, this.#at);
    this.#at += chunk.byteLength;
    return true;
  }

  /**
   * Once: the hex SHA-256 of the bytes, and the buffer when they are complete
   * and match `expectedId` (then marked verified for the store), else undefined.
   */
  finish(expectedId: SegmentId): { digest: string; bytes: Buffer | undefined } {
    if (this.#done) throw new Error("SegmentAssembler.finish called twice");
    this.#done = true;
    const digest = this.#hash.digest("hex");
    if (this.#at !== this.size || digest !== expectedId) return { digest, bytes: undefined };
    verified.set(this.#buf, digest);
    return { digest, bytes: this.#buf };
  }
}
