import { readFileSync } from "node:fs";
import { gzipDeterministic, tarArchive } from "../../src/archive/index.js";
import { sha256Digest } from "../../src/lib/index.js";
import { MANIFEST_NAME, bundleHash, serializeManifest } from "../../src/policy/index.js";
import type { BundleManifest, LoadedPolicy, PolicyEngine, PolicyFile } from "../../src/policy/index.js";

/** The example policy directory shipped with the product (echo_allow permits tool.echo, shell_deny forbids tool.shell). */
export const EXAMPLE_POLICY_DIR = new URL("../../examples/policies", import.meta.url).pathname;

/** The example policies as files, ready for a compiler. */
export const EXAMPLE_POLICY_FILES: PolicyFile[] = ["echo_allow.cedar", "shell_deny.cedar"].map((name) => ({
  name,
  text: readFileSync(new URL(`../../examples/policies/${name}`, import.meta.url), "utf8"),
}));

/**
 * A loaded policy around `engine` with a placeholder bundle (no bundle bytes): for unit
 * tests of what consumes a LoadedPolicy (interceptor, decision sinks, explain).
 */
export function fakeLoadedPolicy(engine: PolicyEngine, opts: { version?: string; ref?: string } = {}): LoadedPolicy {
  const version = opts.version ?? "1.0.0";
  return {
    bundle: {
      manifest: { name: "demo", policy_bundle_version: version, required_runtime_version: "", bundle_hash: "sha256:00", created_at: "2025-01-01T00:00:00Z", engine: "cedar", files: {} },
      files: [],
      digest: "sha256:00",
      size: 0,
    },
    engine,
    ref: opts.ref ?? `demo@${version} (sha256:00)`,
  };
}

/**
 * A well-formed bundle (manifest, digests, bundle_hash all right) written without
 * `buildBundle`, which refuses policies that do not compile: for tests of what a node
 * does with a bundle an attacker or an older tool produced.
 */
export function uncompiledBundle(files: Record<string, string>, opts: { name: string; version: string }): { bytes: Buffer; digest: string } {
  const entries = Object.entries(files).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, text]) => ({ name, content: Buffer.from(text, "utf8") }));
  const manifest: BundleManifest = {
    name: opts.name, policy_bundle_version: opts.version, required_runtime_version: "", bundle_hash: bundleHash(entries),
    created_at: "1970-01-01T00:00:00Z", engine: "cedar", files: Object.fromEntries(entries.map((f) => [f.name, sha256Digest(f.content)])),
  };
  const bytes = gzipDeterministic(tarArchive([{ name: MANIFEST_NAME, content: Buffer.from(serializeManifest(manifest), "utf8") }, ...entries]));
  return { bytes, digest: sha256Digest(bytes) };
}
