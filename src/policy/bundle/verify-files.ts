/** Step 5 of reading a bundle: the files against the manifest. */
import { quote, safeEqual, sha256Digest } from "../../lib/index.js";
import { PolicyError } from "../errors.js";
import type { BundleManifest, PolicyFile } from "../types.js";
import { bundleHash } from "./bundle-hash.js";
import { decodeUtf8 } from "./decode-utf8.js";
import { MANIFEST_NAME, compareNames } from "./names.js";
import type { ArchiveEntry as RawEntry } from "../../archive/index.js";

/**
 * Checks that the archive holds exactly the files the manifest lists, with the
 * listed digests and bundle_hash, and returns them as UTF-8 text in byte-wise name order.
 */
export function verifyFiles(manifest: BundleManifest, entries: readonly RawEntry[]): PolicyFile[] {
  const byName = new Map<string, RawEntry>();
  for (const e of entries) {
    if (e.name === MANIFEST_NAME) continue;
    if (!Object.hasOwn(manifest.files, e.name)) {
      throw new PolicyError("BUNDLE_UNLISTED_FILE", `entry ${e.index} ${quote(e.name)} is not listed in manifest.json`, { details: { entry: e.name } });
    }
    byName.set(e.name, e);
  }
  const names = Object.keys(manifest.files).sort(compareNames);
  for (const name of names) {
    if (!byName.has(name)) throw new PolicyError("BUNDLE_FILE_MISSING", `manifest.json lists ${quote(name)} but the archive does not contain it`, { details: { entry: name } });
  }
  for (const name of names) {
    const actual = sha256Digest(byName.get(name)!.data);
    const expected = manifest.files[name]!;
    if (!safeEqual(actual, expected)) {
      throw new PolicyError("BUNDLE_DIGEST_MISMATCH", `${quote(name)} has digest ${actual}, but manifest.json says ${expected}`, { details: { entry: name, expected, actual } });
    }
  }
  const actualHash = bundleHash(names.map((name) => ({ name, content: byName.get(name)!.data })));
  if (!safeEqual(actualHash, manifest.bundle_hash)) {
    throw new PolicyError("BUNDLE_HASH_MISMATCH", `bundle_hash is ${manifest.bundle_hash}, but the files hash to ${actualHash}`, { details: { expected: manifest.bundle_hash, actual: actualHash } });
  }
  return names.map((name) => {
    const text = decodeUtf8(byName.get(name)!.data);
    if (text === undefined) {
      throw new PolicyError("BUNDLE_MANIFEST_INVALID", `policy file ${quote(name)} is not UTF-8 text`, {
        hint: "policy files must be UTF-8 text; re-save the file as UTF-8 and rebuild with `autonomy policy build`",
        details: { entry: name },
      });
    }
    return { name, text };
  });
}
