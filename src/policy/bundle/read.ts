/**
 * Reading a policy bundle (`.tar.gz` of `manifest.json` + `*.cedar`). Bundles
 * arrive from registries and disks we do not control and are loaded onto edge
 * nodes, so every byte is treated as hostile: sizes are bounded before anything
 * is allocated, the tar stream is walked by an independent strict scanner and
 * then parsed again by the `tar` package (the two must agree), and only then is
 * the manifest trusted to describe the files.
 *
 * The format pieces the builder shares (limits, name rules, the manifest schema
 * and its canonical serialization, {@link bundleHash}) live in this folder too,
 * so there is one definition of what a valid bundle is.
 */
import { ArchiveError, readTarGz } from "../../archive/index.js";
import type { ArchiveEntry, ArchiveErrorCode } from "../../archive/index.js";
import { RUNTIME_VERSION, sha256Digest } from "../../lib/index.js";
import { PolicyError } from "../errors.js";
import type { PolicyErrorCode } from "../errors.js";
import type { PolicyBundle } from "../types.js";
import { verifyCompatibility } from "./compatibility.js";
import { DEFAULT_BUNDLE_LIMITS } from "./limits.js";
import type { BundleLimits } from "./limits.js";
import { parseManifest } from "./manifest.js";
import { MANIFEST_NAME } from "./names.js";
import { verifyFiles } from "./verify-files.js";

export interface ReadBundleOptions {
  /** The runtime version `required_runtime_version` must admit; default {@link RUNTIME_VERSION}. */
  runtimeVersion?: string;
  /** Overrides of {@link DEFAULT_BUNDLE_LIMITS} (tests use small ones). */
  limits?: Partial<BundleLimits>;
}

/**
 * Reads and fully checks a policy bundle. Asynchronous only for the inflate,
 * which runs on libuv's thread pool so a runtime serving tool calls is not
 * blocked while up to 64 MiB expand; every other step is synchronous,
 * CPU-bound and bounded by the limits.
 *
 * Steps, each failing with its own {@link PolicyError} code:
 * 1. size and gzip (`BUNDLE_TOO_LARGE`, `BUNDLE_NOT_GZIP`, `BUNDLE_TAR_INVALID` for a corrupt stream);
 * 2. a strict walk over the tar headers (`BUNDLE_TAR_INVALID`, `BUNDLE_TOO_MANY_ENTRIES`,
 *    `BUNDLE_TOO_LARGE`, `BUNDLE_LINK_FORBIDDEN`, `BUNDLE_ENTRY_TYPE_FORBIDDEN`,
 *    `BUNDLE_PATH_UNSAFE`, `BUNDLE_DUPLICATE_ENTRY`);
 * 3. a second parse with the `tar` package's strict Parser, which must see the same
 *    entries with the same bytes (`BUNDLE_TAR_INVALID`);
 * 4. the manifest (`BUNDLE_MANIFEST_INVALID`);
 * 5. the files against the manifest (`BUNDLE_UNLISTED_FILE`, `BUNDLE_FILE_MISSING`,
 *    `BUNDLE_DIGEST_MISMATCH`, `BUNDLE_HASH_MISMATCH`; non-UTF-8 policy text is
 *    `BUNDLE_MANIFEST_INVALID`);
 * 6. runtime compatibility (`BUNDLE_INCOMPATIBLE`).
 *
 * Any input makes it resolve or reject with a `PolicyError`; nothing else escapes.
 *
 * ### Examples
 *
 * ```ts
 * import { readFile } from "node:fs/promises";
 * import { readBundle } from "./read.js";
 * const bundle = await readBundle(await readFile("bundle.tar.gz"));
 * console.log(bundle.manifest.name, bundle.digest, bundle.files.map((f) => f.name));
 * ```
 */
export async function readBundle(bytes: Uint8Array, opts: ReadBundleOptions = {}): Promise<PolicyBundle> {
  const bundle = await openBundle(bytes, opts.limits);
  verifyCompatibility(bundle.manifest, opts.runtimeVersion ?? RUNTIME_VERSION);
  return bundle;
}

/**
 * Every check of {@link readBundle} except runtime compatibility: for tools that
 * show a bundle built for another runtime (`policy inspect`) and for the
 * builder's read-back of what it wrote.
 */
export async function openBundle(bytes: Uint8Array, limits: Partial<BundleLimits> = {}): Promise<PolicyBundle> {
  const l: BundleLimits = { ...DEFAULT_BUNDLE_LIMITS, ...limits };
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const entries = await readArchive(input, l);
  const manifest = parseManifest(entries.find((e) => e.name === MANIFEST_NAME)?.data);
  const files = verifyFiles(manifest, entries);
  return { manifest, files, digest: sha256Digest(input), size: input.length };
}

/** Steps 1-3, by the archive reader; its refusals become the bundle's codes, with the same message. */
async function readArchive(input: Buffer, limits: BundleLimits): Promise<ArchiveEntry[]> {
  try {
    return await readTarGz(input, { limits, what: "bundle", flat: true });
  } catch (e) {
    if (!(e instanceof ArchiveError)) throw e;
    const err = e;
    throw new PolicyError(BUNDLE_CODE[err.code], err.message, { ...(err.cause !== undefined ? { cause: err.cause } : {}), ...(Object.keys(err.details).length > 0 ? { details: { ...err.details } } : {}) });
  }
}

const BUNDLE_CODE: Readonly<Record<ArchiveErrorCode, PolicyErrorCode>> = {
  ARCHIVE_TOO_LARGE: "BUNDLE_TOO_LARGE",
  ARCHIVE_NOT_GZIP: "BUNDLE_NOT_GZIP",
  ARCHIVE_TAR_INVALID: "BUNDLE_TAR_INVALID",
  ARCHIVE_TOO_MANY_ENTRIES: "BUNDLE_TOO_MANY_ENTRIES",
  ARCHIVE_LINK_FORBIDDEN: "BUNDLE_LINK_FORBIDDEN",
  ARCHIVE_ENTRY_TYPE_FORBIDDEN: "BUNDLE_ENTRY_TYPE_FORBIDDEN",
  ARCHIVE_PATH_UNSAFE: "BUNDLE_PATH_UNSAFE",
  ARCHIVE_DUPLICATE_ENTRY: "BUNDLE_DUPLICATE_ENTRY",
  // Only the writer raises it; a read never does.
  ARCHIVE_ENTRY_INVALID: "BUNDLE_TAR_INVALID",
};
