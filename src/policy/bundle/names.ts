/** Name rules of a bundle: what its entries and the bundle itself may be called, and their order. */

/** The manifest's entry name inside the archive. */
export const MANIFEST_NAME = "manifest.json";

/** A policy file name: a plain ASCII name ending in `.cedar` (no path, no leading dot or dash). */
export const POLICY_FILE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.cedar$/;

/** A bundle name (`manifest.name`): same alphabet as file names, 1–128 characters. */
export const BUNDLE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Byte-wise comparison of the UTF-8 encodings (the order bundle_hash and the archive use). */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}
