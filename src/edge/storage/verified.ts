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
 * SHA-256 over an assembler's buffer computed elsewhere (the relay receiver's
 * worker thread, reading shared memory), so the receiving thread only copies.
 */
export interface RangeHasher {
  /** `size` bytes of memory the hasher reads: the assembler copies the segment into it. */
  readonly buffer: Buffer;
  /** Hash bytes [from, to) of `buffer`; called with consecutive ranges from 0, after they were written. */
  update(from: number, to: number): void;
  /** The hex SHA-256 of every range passed to update; called once. */
  digest(): Promise<string>;
}

/** With a RangeHasher, the bytes copied since the last update are handed to it in steps of this size. */
const HASH_STEP = 256 * 1024;

/**
 * Collects a segment of a known size from chunks into one buffer of its own,
 * hashing each chunk as it is copied (one pass over the bytes), and hands the
 * buffer out once, verified against the expected id. Given a RangeHasher, the
 * hash runs there (`settle`, not `finish`).
 */
export class SegmentAssembler {
  readonly #hash: Hash | undefined;
  readonly #buf: Buffer;
  readonly #ranges: RangeHasher | undefined;
  #hashed = 0;
  #at = 0;
  #done = false;

  constructor(readonly size: number, ranges?: RangeHasher) {
    if (ranges !== undefined && ranges.buffer.byteLength !== size) throw new RangeError("SegmentAssembler: the hasher's buffer is not the segment's size");
    this.#ranges = ranges;
    this.#hash = ranges === undefined ? createHash("sha256") : undefined;
    this.#buf = ranges?.buffer ?? Buffer.allocUnsafe(size);
  }

  /** Bytes received so far. */
  get received(): number {
    return this.#at;
  }

  /** Copies and hashes one chunk; false (nothing taken) when it would run past `size` or after finish. */
  append(chunk: Uint8Array): boolean {
    if (this.#done || this.#at + chunk.byteLength > this.size) return false;
    this.#hash?.update(chunk);
    this.#buf.set(chunk, this.#at);
    this.#at += chunk.byteLength;
    if (this.#ranges !== undefined && this.#at - this.#hashed >= HASH_STEP) {
      this.#ranges.update(this.#hashed, this.#at);
      this.#hashed = this.#at;
    }
    return true;
  }

  /**
   * Once: the hex SHA-256 of the bytes, and the buffer when they are complete
   * and match `expectedId` (then marked verified for the store), else undefined.
   */
  finish(expectedId: SegmentId): { digest: string; bytes: Buffer | undefined } {
    if (this.#hash === undefined) throw new Error("SegmentAssembler.finish: the hash runs elsewhere; call settle");
    if (this.#done) throw new Error("SegmentAssembler.finish called twice");
    this.#done = true;
    return this.#verdict(this.#hash.digest("hex"), expectedId);
  }

  /** As {@link finish}, for either way of hashing (the RangeHasher's digest is awaited). */
  async settle(expectedId: SegmentId): Promise<{ digest: string; bytes: Buffer | undefined }> {
    if (this.#ranges === undefined) return this.finish(expectedId);
    if (this.#done) throw new Error("SegmentAssembler.finish called twice");
    this.#done = true;
    if (this.#at > this.#hashed) this.#ranges.update(this.#hashed, this.#at);
    this.#hashed = this.#at;
    return this.#verdict(await this.#ranges.digest(), expectedId);
  }

  #verdict(digest: string, expectedId: SegmentId): { digest: string; bytes: Buffer | undefined } {
    if (this.#at !== this.size || digest !== expectedId) return { digest, bytes: undefined };
    verified.set(this.#buf, digest);
    return { digest, bytes: this.#buf };
  }
}
