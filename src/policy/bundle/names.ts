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

/**
 * Why `name` may not appear in a bundle, or undefined when it may. Bundles are
 * flat, so any `/` is refused; names are printable ASCII so look-alike Unicode
 * and normalisation forms cannot disguise one name as another.
 */
export function pathProblem(name: string): string | undefined {
  if (name.length === 0) return "empty name";
  if (name.length > 255) return "name longer than 255 bytes";
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this looks for
  if (/[\x00-\x1f\x7f-\x9f]/.test(name)) return "control character in the name";
  if (/[^\x20-\x7e]/.test(name)) return "non-ASCII name (look-alike characters and Unicode normalisation make such names ambiguous)";
  if (name.includes("\\")) return "backslash in the name (a path separator on Windows)";
  if (name.split("/").includes("..")) return "'..' component (path traversal)";
  if (name.startsWith("/")) return "absolute path";
  if (/^[A-Za-z]:/.test(name)) return "drive-letter path";
  if (name.includes("/")) return "'/' in the name (bundles are flat: no directories)";
  if (name === ".") return "'.' is not a file name";
  return undefined;
}
