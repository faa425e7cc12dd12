import { quote, sha256Digest } from "../../lib/index.js";
import { compareNames } from "./names.js";

/** One file's name and raw content, as {@link bundleHash} consumes them. */
export interface BundleFileContent {
  readonly name: string;
  /** Raw bytes; a string is taken as its UTF-8 encoding. */
  readonly content: Uint8Array | string;
}

/**
 * The manifest's `bundle_hash`: `sha256:` followed by the lowercase hex SHA-256
 * of the concatenation, for each policy file in byte-wise ascending order of
 * its UTF-8 name, of
 *
 * ```text
 * name bytes (UTF-8) ‖ 0x00 ‖ lowercase hex SHA-256 of the file's bytes (64 ASCII chars) ‖ 0x0A
 * ```
 *
 * `manifest.json` itself is not covered. The NUL cannot occur in a name and the
 * hex digest has a fixed length, so the encoding is unambiguous. To recompute it
 * from a shell over an unpacked bundle (names are ASCII, so `LC_ALL=C` sort is
 * byte-wise): `for f in $(ls *.cedar | LC_ALL=C sort); do printf '%s\0%s\n' "$f" "$(sha256sum < "$f" | cut -c1-64)"; done | sha256sum`.
 *
 * Both `policy build` and the reader call this one function.
 *
 * ### Examples
 *
 * ```ts
 * import { bundleHash } from "./bundle-hash.js";
 * const h = bundleHash([{ name: "a.cedar", content: "permit(principal, action, resource);" }]);
 * // h === "sha256:…"
 * ```
 *
 * @throws TypeError when two files share a name (a caller bug: names are unique by construction).
 */
export function bundleHash(files: readonly BundleFileContent[]): string {
  const sorted = [...files].sort((a, b) => compareNames(a.name, b.name));
  const parts: Buffer[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const f = sorted[i]!;
    if (i > 0 && sorted[i - 1]!.name === f.name) throw new TypeError(`bundleHash: duplicate file name ${quote(f.name)}`);
    const hex = sha256Digest(f.content).slice("sha256:".length);
    parts.push(Buffer.from(f.name, "utf8"), Buffer.from([0]), Buffer.from(hex, "ascii"), Buffer.from([0x0a]));
  }
  return sha256Digest(Buffer.concat(parts));
}
