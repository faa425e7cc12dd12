import semver from "semver";
import { PolicyError } from "../errors.js";
import type { BundleManifest } from "../types.js";
import { quote } from "../../lib/index.js";

/** True when `runtimeVersion` satisfies the manifest's `required_runtime_version` (pre-releases included). */
export function isRuntimeCompatible(manifest: BundleManifest, runtimeVersion: string): boolean {
  const range = manifest.required_runtime_version;
  if (range === "") return true;
  return semver.valid(runtimeVersion) !== null && semver.satisfies(runtimeVersion, range, { includePrerelease: true });
}

/** Checks that this runtime may load the bundle. */
export function verifyCompatibility(manifest: BundleManifest, runtimeVersion: string): void {
  if (isRuntimeCompatible(manifest, runtimeVersion)) return;
  throw new PolicyError(
    "BUNDLE_INCOMPATIBLE",
    `bundle ${manifest.name}@${manifest.policy_bundle_version} requires runtime ${quote(manifest.required_runtime_version)}; this runtime is ${quote(runtimeVersion)}`,
    { details: { required_runtime_version: manifest.required_runtime_version, runtime_version: runtimeVersion } },
  );
}
