import { createHash } from "node:crypto";

/** Segment n's bytes: deterministic, so the parent knows every id without keeping the bytes. */
export function segmentBytes(n: number, size: number): Uint8Array {
  const out = Buffer.alloc(size);
  let block = createHash("sha256").update(`segment-${n}`).digest();
  for (let at = 0; at < size; at += block.length) {
    block.copy(out, at, 0, Math.min(block.length, size - at));
    block = createHash("sha256").update(block).digest();
  }
  return out;
}

export function segmentId(n: number, size: number): string {
  return createHash("sha256").update(segmentBytes(n, size)).digest("hex");
}
