import { createHash, timingSafeEqual } from "node:crypto";

/** `sha256:<64 hex>` of `data`, as OCI spells digests. */
export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

/** True for a well-formed lowercase `sha256:<64 hex>` digest. */
export function isSha256Digest(s: string): boolean {
  return DIGEST_RE.test(s);
}

/** Constant-time string equality (digests, fingerprints). */
export function safeEqual(a: string, b: string): boolean {
  const ba = Buffer.from(a);
  const bb = Buffer.from(b);
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}
