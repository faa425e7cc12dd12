/**
 * Building a policy bundle from a directory of `.cedar` files: deterministic
 * bytes (the digest a lock pins must not depend on when or where it was built),
 * and never a bundle a node would refuse — the builder reads back what it
 * wrote with {@link openBundle} and compiles every policy with the runtime's
 * Cedar engine before returning it.
 */
import { dateOf, quote, sha256Digest, systemClock } from "../../lib/index.js";
import type { Clock } from "../../lib/index.js";
import { PolicyError } from "../errors.js";
import type { BundleManifest } from "../types.js";
import { bundleHash } from "./bundle-hash.js";
import { bundleManifestSchema, isRuntimeRange, isStrictSemver, serializeManifest } from "./manifest.js";
import { BUNDLE_NAME_RE, MANIFEST_NAME } from "./names.js";
import { openBundle } from "./read.js";
import { readSources } from "./sources.js";
import { gzipDeterministic, tarArchive } from "../../archive/index.js";
import { compileCedar } from "../cedar/index.js";

export interface BuildBundleOptions {
  /** `manifest.name`: 1–128 letters, digits, `.`, `_`, `-`, starting with a letter or digit. */
  name: string;
  /** `manifest.policy_bundle_version`: a strict semantic version (`1.2.3`). */
  version: string;
  /** `manifest.required_runtime_version`: a semver range, or `""` (default) for any runtime. */
  runtimeVersion?: string;
  /** `manifest.created_at`, truncated to the second. Default: `SOURCE_DATE_EPOCH` when set, else now. */
  createdAt?: Date;
  /** The environment `SOURCE_DATE_EPOCH` is read from; default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** The clock used when neither `createdAt` nor `SOURCE_DATE_EPOCH` is given. Default {@link systemClock}. */
  clock?: Clock;
}

export interface BuiltBundle {
  /** The `.tar.gz` bytes. */
  bytes: Buffer;
  manifest: BundleManifest;
  /** `sha256:` of {@link bytes}: the digest a lock's `policy_bundle.digest` pins. */
  digest: string;
}

/**
 * Builds a bundle from every `*.cedar` file directly in `dir`.
 *
 * The directory may hold only regular `.cedar` files with plain names
 * (`/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.cedar$/`) plus README/markdown files,
 * which are ignored. Anything else — other files, subdirectories, symlinks,
 * names differing only in case, non-UTF-8 policy text, no `.cedar` at all — is
 * `BUNDLE_SOURCE_INVALID` naming the entry; a bad name, version or range is
 * `BUNDLE_MANIFEST_INVALID`; a policy the runtime's Cedar engine does not
 * compile is `POLICY_COMPILE_FAILED` naming the file, line and column (the
 * node would refuse the bundle at activation, after it was locked and signed).
 *
 * The archive is a gzip'd POSIX ustar stream: `manifest.json` (see
 * {@link serializeManifest}) first, then the policy files in byte-wise name
 * order; regular files only, mode 0644, uid/gid 0, no user or group names,
 * mtime 0; names of 100 bytes or more carry a pax `path` record. The gzip header
 * has no name and no timestamp, and its OS byte is fixed to Unix. The same files
 * and `created_at` give the same bytes (for a given zlib: Node's bundled zlib is
 * the reference).
 *
 * ### Examples
 *
 * ```ts
 * import { writeFileAtomic } from "../../lib/index.js";
 * import { buildBundle } from "./build.js";
 * const built = await buildBundle("examples/policies", { name: "demo", version: "1.0.0" });
 * await writeFileAtomic("bundle.tar.gz", built.bytes);
 * console.log(built.digest);
 * ```
 */
export async function buildBundle(dir: string, opts: BuildBundleOptions): Promise<BuiltBundle> {
  const createdAt = rfc3339Seconds(opts.createdAt ?? sourceDateEpoch(opts.env ?? process.env) ?? dateOf(opts.clock ?? systemClock));
  const runtimeVersion = opts.runtimeVersion ?? "";
  checkBuildOptions(opts.name, opts.version, runtimeVersion);

  const files = await readSources(dir);
  const manifest: BundleManifest = {
    name: opts.name,
    policy_bundle_version: opts.version,
    required_runtime_version: runtimeVersion,
    bundle_hash: bundleHash(files),
    created_at: createdAt,
    engine: "cedar",
    files: Object.fromEntries(files.map((f) => [f.name, sha256Digest(f.content)])),
  };
  // The manifest we are about to write must pass the reader's own schema.
  const check = bundleManifestSchema.safeParse(manifest);
  if (!check.success) throw new PolicyError("BUNDLE_MANIFEST_INVALID", `cannot build: the manifest would be invalid: ${check.error.message}`);

  const tar = tarArchive([{ name: MANIFEST_NAME, content: Buffer.from(serializeManifest(manifest), "utf8") }, ...files]);
  const bytes = gzipDeterministic(tar);
  // Never hand out a bundle a node refuses: the reader's checks (sizes, names, counts, digests),
  // then the files as read compiled by the same compiler a node loads them with.
  compileCedar((await openBundle(bytes)).files).dispose();
  return { bytes, manifest, digest: sha256Digest(bytes) };
}

/** Name, version and range, each checked with a message that names the flag a user typed. */
function checkBuildOptions(name: string, version: string, runtimeVersion: string): void {
  const problems: string[] = [];
  if (!BUNDLE_NAME_RE.test(name)) problems.push(`name ${quote(name)} (--name) must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  if (!isStrictSemver(version)) problems.push(`version ${quote(version)} (--version) is not a semantic version such as 1.2.3`);
  if (!isRuntimeRange(runtimeVersion)) problems.push(`runtime version ${quote(runtimeVersion)} (--runtime-version) is not a semver range such as ">=0.1.0 <1.0.0"`);
  if (problems.length > 0) {
    throw new PolicyError("BUNDLE_MANIFEST_INVALID", `cannot build the bundle: ${problems.join("; ")}`, {
      hint: "pass --name NAME --version X.Y.Z [--runtime-version RANGE] with valid values (see docs/policy.md)",
    });
  }
}

/** `SOURCE_DATE_EPOCH` (https://reproducible-builds.org/specs/source-date-epoch/) as a Date, if set. */
function sourceDateEpoch(env: Readonly<Record<string, string | undefined>>): Date | undefined {
  const raw = env.SOURCE_DATE_EPOCH;
  if (raw === undefined) return undefined;
  if (!/^\d{1,12}$/.test(raw)) {
    throw new PolicyError("BUNDLE_SOURCE_INVALID", `SOURCE_DATE_EPOCH=${quote(raw)} is not a whole number of seconds since 1970`, {
      hint: "set SOURCE_DATE_EPOCH to a Unix timestamp in seconds (e.g. $(git log -1 --format=%ct)) or unset it",
    });
  }
  return new Date(Number(raw) * 1000);
}

/** RFC 3339 UTC to the second (`2024-01-31T12:00:00Z`); years 0000–9999 only. */
function rfc3339Seconds(d: Date): string {
  const t = d.getTime();
  if (!Number.isFinite(t) || d.getUTCFullYear() < 0 || d.getUTCFullYear() > 9999) {
    throw new PolicyError("BUNDLE_SOURCE_INVALID", `created_at ${String(d)} is not a date between years 0000 and 9999`, {
      hint: "pass a valid creation time (or SOURCE_DATE_EPOCH)",
    });
  }
  return new Date(Math.floor(t / 1000) * 1000).toISOString().replace(/\.000Z$/, "Z");
}
