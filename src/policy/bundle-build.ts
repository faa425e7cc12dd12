/**
 * Building a policy bundle from a directory of `.cedar` files: deterministic
 * bytes (the digest a lock pins must not depend on when or where it was built),
 * and never a bundle the reader would refuse — the builder reads back what it
 * wrote with {@link openBundle} before returning it.
 */
import { constants } from "node:fs";
import { lstat, open, readdir } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { Header, Pax } from "tar";
import { errnoCode, sha256Digest } from "../lib/index.js";
import {
  BUNDLE_NAME_RE,
  DEFAULT_BUNDLE_LIMITS,
  MANIFEST_NAME,
  POLICY_FILE_RE,
  bundleHash,
  bundleManifestSchema,
  compareNames,
  isRuntimeRange,
  isStrictSemver,
  openBundle,
  quote,
  serializeManifest,
} from "./bundle-read.js";
import { PolicyError } from "./errors.js";
import type { BundleManifest } from "./types.js";

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
  /** The clock used when neither `createdAt` nor `SOURCE_DATE_EPOCH` is given. */
  now?: () => Date;
}

export interface BuiltBundle {
  /** The `.tar.gz` bytes. */
  bytes: Buffer;
  manifest: BundleManifest;
  /** `sha256:` of {@link bytes}: the digest a lock's `policy_bundle.digest` pins. */
  digest: string;
}

/** README files and markdown notes may sit next to the policies; they are left out of the bundle. */
const IGNORED_RE = /^(readme(\.[A-Za-z0-9]+)?|.+\.(md|markdown))$/i;

/** Source files are opened without following symlinks (a link swapped in after the directory scan is refused). */
const O_NOFOLLOW: number = (constants as { O_NOFOLLOW?: number }).O_NOFOLLOW ?? 0;

/**
 * Builds a bundle from every `*.cedar` file directly in `dir`.
 *
 * The directory may hold only regular `.cedar` files with plain names
 * (`/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.cedar$/`) plus README/markdown files,
 * which are ignored. Anything else — other files, subdirectories, symlinks,
 * names differing only in case, non-UTF-8 policy text, no `.cedar` at all — is
 * `BUNDLE_SOURCE_INVALID` naming the entry; a bad name, version or range is
 * `BUNDLE_MANIFEST_INVALID`.
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
 * import { writeFileAtomic } from "../lib/index.js";
 * import { buildBundle } from "./bundle-build.js";
 * const built = await buildBundle("examples/policies", { name: "demo", version: "1.0.0" });
 * await writeFileAtomic("bundle.tar.gz", built.bytes);
 * console.log(built.digest);
 * ```
 */
export async function buildBundle(dir: string, opts: BuildBundleOptions): Promise<BuiltBundle> {
  const createdAt = rfc3339Seconds(opts.createdAt ?? sourceDateEpoch(opts.env ?? process.env) ?? (opts.now ?? (() => new Date()))());
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
  // Never hand out a bundle the reader refuses (sizes, names, counts, digests).
  await openBundle(bytes);
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

interface SourceFile {
  name: string;
  content: Buffer;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The `.cedar` files of `dir`, sorted byte-wise, after checking every entry of the directory. */
async function readSources(dir: string): Promise<SourceFile[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    throw new PolicyError("BUNDLE_SOURCE_INVALID", `cannot read the policy directory ${quote(dir, 300)}: ${errnoCode(e) ?? String(e)}`, { cause: e });
  }
  const limits = DEFAULT_BUNDLE_LIMITS;
  const cedar: string[] = [];
  const folded = new Map<string, string>();
  for (const name of names.sort(compareNames)) {
    const path = join(dir, name);
    const label = `${quote(name)} in ${quote(dir, 300)}`;
    let st;
    try {
      st = await lstat(path);
    } catch (e) {
      throw sourceError(`cannot examine ${label}: ${errnoCode(e) ?? String(e)}`, name, e);
    }
    if (st.isSymbolicLink()) throw sourceError(`${label} is a symbolic link; bundle only regular files`, name);
    if (st.isDirectory()) throw sourceError(`${label} is a directory; bundles are flat (put policies directly in the directory)`, name);
    if (!st.isFile()) throw sourceError(`${label} is not a regular file`, name);
    if (name.endsWith(".cedar")) {
      if (!POLICY_FILE_RE.test(name)) {
        throw sourceError(`${label}: policy file names must be 1-128 letters, digits, '.', '_' or '-' (starting with a letter or digit) followed by .cedar`, name);
      }
      const other = folded.get(name.toLowerCase());
      if (other !== undefined) throw sourceError(`${label} and ${quote(other)} differ only in letter case`, name);
      folded.set(name.toLowerCase(), name);
      cedar.push(name);
    } else if (!IGNORED_RE.test(name)) {
      throw sourceError(`${label} is neither a .cedar policy nor a README/markdown file`, name);
    }
  }
  if (cedar.length === 0) throw sourceError(`${quote(dir, 300)} has no .cedar files`);
  if (cedar.length + 1 > limits.maxEntries) {
    throw new PolicyError("BUNDLE_TOO_MANY_ENTRIES", `${quote(dir, 300)} has ${cedar.length} policy files; a bundle holds at most ${limits.maxEntries - 1}`);
  }
  const files: SourceFile[] = [];
  for (const name of cedar) {
    const content = await readRegularFile(join(dir, name), name, limits.maxEntryBytes);
    if (!isUtf8(content)) throw sourceError(`${quote(name)} is not UTF-8 text`, name);
    files.push({ name, content });
  }
  return files;
}

function isUtf8(b: Uint8Array): boolean {
  try {
    UTF8.decode(b);
    return true;
  } catch {
    return false;
  }
}

/** Reads a regular file without following a symlink, refusing more than `max` bytes. */
async function readRegularFile(path: string, name: string, max: number): Promise<Buffer> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | O_NOFOLLOW);
  } catch (e) {
    throw sourceError(`cannot open ${quote(name)}: ${errnoCode(e) ?? String(e)}`, name, e);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw sourceError(`${quote(name)} is not a regular file`, name);
    if (st.size > max) throw new PolicyError("BUNDLE_TOO_LARGE", `${quote(name)} is ${st.size} bytes; a policy file may be at most ${max} bytes`, { details: { entry: name } });
    const content = await fh.readFile();
    if (content.length > max) throw new PolicyError("BUNDLE_TOO_LARGE", `${quote(name)} grew past ${max} bytes while being read`, { details: { entry: name } });
    return content;
  } finally {
    await fh.close();
  }
}

function sourceError(message: string, entry?: string, cause?: unknown): PolicyError {
  return new PolicyError("BUNDLE_SOURCE_INVALID", message, {
    ...(entry !== undefined ? { details: { entry } } : {}),
    ...(cause !== undefined ? { cause } : {}),
  });
}

// ---------------------------------------------------------------------------
// Archive

const BLOCK = 512;
/** Longest name stored in the ustar name field alone; longer names get a pax `path` record. */
const USTAR_NAME_MAX = 99;
const EPOCH = new Date(0);

/** A POSIX ustar stream of regular files in the given order, every field fixed except name, size and content. */
function tarArchive(files: readonly SourceFile[]): Buffer {
  const blocks: Buffer[] = [];
  for (const f of files) {
    if (Buffer.byteLength(f.name) > USTAR_NAME_MAX) {
      const body = Buffer.from(new Pax({ path: f.name }).encodeBody(), "utf8");
      blocks.push(header(`PaxHeader/${f.name}`.slice(0, USTAR_NAME_MAX), "ExtendedHeader", body.length), body, zeroPad(body.length));
    }
    blocks.push(header(f.name.slice(0, USTAR_NAME_MAX), "File", f.content.length), f.content, zeroPad(f.content.length));
  }
  blocks.push(Buffer.alloc(2 * BLOCK)); // end-of-archive marker
  return Buffer.concat(blocks);
}

function header(path: string, type: "File" | "ExtendedHeader", size: number): Buffer {
  const h = new Header({ path, type, size, mode: 0o644, uid: 0, gid: 0, mtime: EPOCH, uname: "", gname: "", linkpath: "" });
  const block = Buffer.alloc(BLOCK);
  if (h.encode(block)) throw new Error(`internal: tar header for ${quote(path)} does not fit ustar`);
  return block;
}

function zeroPad(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** gzip header byte 9: the operating system; fixed so the bytes do not depend on the build host. */
const GZIP_OS_UNIX = 3;

/** gzip at level 9 with no file name, no mtime (Node's zlib writes 0) and a fixed OS byte. */
function gzipDeterministic(tar: Buffer): Buffer {
  const gz = gzipSync(tar, { level: 9 });
  // FLG (byte 3) is 0: no header CRC covers byte 9, so fixing it keeps the stream valid.
  if (gz[3] !== 0) throw new Error("internal: unexpected gzip header flags");
  gz[9] = GZIP_OS_UNIX;
  return gz;
}
