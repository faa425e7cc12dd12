/**
 * Reading a policy bundle (`.tar.gz` of `manifest.json` + `*.cedar`). Bundles
 * arrive from registries and disks we do not control and are loaded onto edge
 * nodes, so every byte is treated as hostile: sizes are bounded before anything
 * is allocated, the tar stream is walked by an independent strict scanner and
 * then parsed again by the `tar` package (the two must agree), and only then is
 * the manifest trusted to describe the files.
 *
 * The format pieces the builder shares (limits, name rules, the manifest schema
 * and its canonical serialization, {@link bundleHash}) live here too, so there is
 * one definition of what a valid bundle is.
 */
import { gunzip } from "node:zlib";
import semver from "semver";
import { Parser } from "tar";
import type { ReadEntry } from "tar";
import { z } from "zod";
import { RUNTIME_VERSION, fieldProblems, isSha256Digest, safeEqual, sha256Digest } from "../lib/index.js";
import { PolicyError } from "./errors.js";
import type { BundleManifest, PolicyBundle, PolicyFile } from "./types.js";

// ---------------------------------------------------------------------------
// Format constants shared with the builder

const MiB = 1024 * 1024;

/** Size and count limits applied while reading (and, by the builder, while writing) a bundle. */
export interface BundleLimits {
  /** The `.tar.gz` itself. Default 16 MiB. */
  maxCompressedBytes: number;
  /** The tar stream after gunzip; decompression stops at this size. Default 64 MiB. */
  maxDecompressedBytes: number;
  /** Any one file in the archive. Default 4 MiB. */
  maxEntryBytes: number;
  /** Entries in the archive, `manifest.json` included (pax extended headers not counted). Default 1,000. */
  maxEntries: number;
  /** The body of one pax or GNU long-name header. Default 64 KiB. */
  maxExtendedHeaderBytes: number;
}

/** The limits {@link readBundle} applies unless told otherwise. */
export const DEFAULT_BUNDLE_LIMITS: Readonly<BundleLimits> = Object.freeze({
  maxCompressedBytes: 16 * MiB,
  maxDecompressedBytes: 64 * MiB,
  maxEntryBytes: 4 * MiB,
  maxEntries: 1000,
  maxExtendedHeaderBytes: 64 * 1024,
});

/** The manifest's entry name inside the archive. */
export const MANIFEST_NAME = "manifest.json";

/** A policy file name: a plain ASCII name ending in `.cedar` (no path, no leading dot or dash). */
export const POLICY_FILE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.cedar$/;

/** A bundle name (`manifest.name`): same alphabet as file names, 1–128 characters. */
export const BUNDLE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Longest version / range string accepted (semver's own limit). */
const MAX_VERSION_CHARS = 256;

const RFC3339_UTC_SECONDS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

/** True for `YYYY-MM-DDTHH:MM:SSZ` naming a real instant (no fractions, no offsets, no leap seconds). */
export function isRfc3339UtcSeconds(s: string): boolean {
  if (!RFC3339_UTC_SECONDS_RE.test(s)) return false;
  const d = new Date(s);
  return !Number.isNaN(d.getTime()) && d.toISOString() === s.replace("Z", ".000Z");
}

/** True for `""` (any runtime) or a semver range (`>=0.1.0 <1.0.0`, `^1.2.0`) without surrounding blanks. */
export function isRuntimeRange(s: string): boolean {
  if (s === "") return true;
  return s.length <= MAX_VERSION_CHARS && s.trim() === s && semver.validRange(s) !== null;
}

/** True for a strict semantic version exactly as written (`1.2.3`, not `v1.2.3` or `=1.2.3`). */
export function isStrictSemver(s: string): boolean {
  return s.length <= MAX_VERSION_CHARS && semver.valid(s) === s;
}

/** Byte-wise comparison of the UTF-8 encodings (the order bundle_hash and the archive use). */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

// ---------------------------------------------------------------------------
// bundle_hash

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
 * import { bundleHash } from "./bundle-read.js";
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

// ---------------------------------------------------------------------------
// Manifest schema and canonical form

const str = (): z.ZodString => z.string({ error: "must be a string" });

/**
 * `manifest.json`. Strict: an unknown field is an error, because a field the
 * reader ignores is a field an attacker can use.
 */
export const bundleManifestSchema = z.strictObject(
  {
    name: str().regex(BUNDLE_NAME_RE, { error: "must be 1-128 characters (letters, digits, '.', '_', '-'), starting with a letter or digit" }),
    policy_bundle_version: str().refine(isStrictSemver, { error: "must be a semantic version such as 1.2.3" }),
    required_runtime_version: str().refine(isRuntimeRange, { error: 'must be a semver range such as ">=0.1.0 <1.0.0", or "" for any runtime' }),
    bundle_hash: str().refine(isSha256Digest, { error: "must be sha256:<64 lowercase hex>" }),
    created_at: str().refine(isRfc3339UtcSeconds, { error: "must be RFC 3339 UTC to the second, e.g. 2024-01-31T12:00:00Z" }),
    engine: z.literal("cedar", { error: 'must be "cedar"' }),
    files: z
      .record(
        str().regex(POLICY_FILE_RE, { error: "is not a policy file name" }),
        str().refine(isSha256Digest, { error: "must be sha256:<64 lowercase hex>" }),
        {
          error: (iss) =>
            iss.code === "invalid_key" ? "is not a policy file name (letters, digits, '.', '_', '-', ending in .cedar)" : "must be an object",
        },
      )
      .refine((f) => Object.keys(f).length > 0, { error: "must list at least one policy file" })
      .refine((f) => Object.keys(f).length < DEFAULT_BUNDLE_LIMITS.maxEntries, { error: `must list fewer than ${DEFAULT_BUNDLE_LIMITS.maxEntries} files` }),
  },
  { error: "must be an object" },
);

/**
 * The canonical `manifest.json` bytes: keys in the order of {@link BundleManifest},
 * `files` sorted byte-wise by name, two-space indentation, trailing newline.
 * (No file name is an array index, so JavaScript keeps the insertion order.)
 * The builder writes exactly this and the reader accepts nothing else, so a
 * manifest cannot carry duplicate keys, reordered keys or padding that another
 * JSON parser might read differently.
 */
export function serializeManifest(m: BundleManifest): string {
  const files: Record<string, string> = {};
  for (const name of Object.keys(m.files).sort(compareNames)) files[name] = m.files[name]!;
  const doc = {
    name: m.name,
    policy_bundle_version: m.policy_bundle_version,
    required_runtime_version: m.required_runtime_version,
    bundle_hash: m.bundle_hash,
    created_at: m.created_at,
    engine: m.engine,
    files,
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

// ---------------------------------------------------------------------------
// Public entry points

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
 * import { readBundle } from "./bundle-read.js";
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
  checkContainer(input, l);
  const tar = await gunzipBounded(input, l);
  const entries = scanTar(tar, l);
  crossCheckWithTarParser(tar, entries, l);
  const manifest = parseManifest(entries);
  const files = verifyFiles(manifest, entries);
  return { manifest, files, digest: sha256Digest(input), size: input.length };
}

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

// ---------------------------------------------------------------------------
// Step 1: size and gzip

const GZIP_MAGIC = [0x1f, 0x8b, 0x08] as const;

/** Checks the compressed size and the gzip magic, before anything is allocated. */
function checkContainer(input: Buffer, l: BundleLimits): void {
  if (input.length > l.maxCompressedBytes) {
    throw new PolicyError("BUNDLE_TOO_LARGE", `the bundle is ${input.length} bytes; the limit is ${l.maxCompressedBytes} bytes compressed`);
  }
  if (input.length < 18 || GZIP_MAGIC.some((b, i) => input[i] !== b)) {
    throw new PolicyError("BUNDLE_NOT_GZIP", "the bundle is not gzip data (no gzip header with deflate compression)");
  }
}

/** Inflates with a hard output cap: zlib stops a bomb at the cap and never allocates more. Trailing bytes are refused. */
async function gunzipBounded(input: Buffer, l: BundleLimits): Promise<Buffer> {
  let out: { buffer: Buffer; engine: { bytesWritten: number } };
  try {
    out = await new Promise((resolve, reject) => {
      gunzip(input, { maxOutputLength: l.maxDecompressedBytes, info: true }, (err, result) => {
        if (err) reject(err);
        else resolve(result as unknown as typeof out);
      });
    });
  } catch (e) {
    if (e instanceof RangeError || hasErrCode(e, "ERR_BUFFER_TOO_LARGE")) {
      throw new PolicyError("BUNDLE_TOO_LARGE", `the bundle expands to more than ${l.maxDecompressedBytes} bytes (a compression bomb?); decompression was stopped there`, { cause: e });
    }
    throw new PolicyError("BUNDLE_TAR_INVALID", `the gzip stream is corrupt or truncated: ${printable(e instanceof Error ? e.message : String(e))}`, { cause: e });
  }
  if (out.engine.bytesWritten !== input.length) {
    throw new PolicyError("BUNDLE_TAR_INVALID", `${input.length - out.engine.bytesWritten} bytes follow the end of the gzip stream`);
  }
  return out.buffer;
}

function hasErrCode(e: unknown, code: string): boolean {
  return typeof e === "object" && e !== null && (e as { code?: unknown }).code === code;
}

// ---------------------------------------------------------------------------
// Step 2: strict tar walk

const BLOCK = 512;

/** One file entry as the raw headers describe it. */
interface RawEntry {
  /** 1-based position among file entries, for messages. */
  readonly index: number;
  /** The effective name (pax `path` / GNU long name if present, else the ustar prefix/name). */
  readonly name: string;
  readonly data: Buffer;
}

/** ustar type flags the walk treats specially; every other type is refused. */
const Flag = {
  File: "0",
  OldFile: "\0",
  Link: "1",
  Symlink: "2",
  Pax: "x",
  PaxGlobal: "g",
  GnuLongName: "L",
  GnuLongLink: "K",
} as const;

const FORBIDDEN_TYPES: Readonly<Record<string, string>> = {
  "3": "a character device",
  "4": "a block device",
  "5": "a directory",
  "6": "a FIFO",
  "7": "a contiguous file",
  D: "a GNU dump directory",
  S: "a GNU sparse file",
  M: "a multi-volume continuation",
  V: "a tape volume header",
  N: "an old GNU long-name header",
  X: "an old-style extended header",
  A: "a Solaris ACL",
  I: "an inode-only entry",
};

/**
 * pax keys refused. `type` is no POSIX key, but the tar package honours it and
 * would read the entry as another type than GNU tar does; a global header may not
 * rename, resize or retype the entries after it.
 */
const PAX_FORBIDDEN_KEYS = new Set(["type"]);
const PAX_GLOBAL_FORBIDDEN_KEYS = new Set(["path", "linkpath", "size", "type"]);

/** What pending extended headers say about the next file entry. */
interface Pending {
  path?: string;
  size?: number;
  linkpath?: boolean;
  /** A GNU long name with bytes after its NUL. */
  hidden?: boolean;
}

/**
 * Walks the tar stream header by header, independently of the `tar` package:
 * checksums, ustar magic, octal fields, bounds, zero padding and the
 * end-of-archive marker are all required, and each file entry is checked for
 * type, name and duplicates as soon as its header is read, so the first problem
 * in archive order decides the error.
 *
 * Duplicates: exact duplicates are refused, and so are names that differ only in
 * ASCII letter case (they would collide when unpacked on macOS or Windows). Names
 * are ASCII only (see {@link pathProblem}), so Unicode case folding and
 * normalisation (NFC/NFD look-alikes) cannot produce collisions we miss.
 */
function scanTar(tar: Buffer, l: BundleLimits): RawEntry[] {
  if (tar.length >= 2 && tar[0] === 0x1f && tar[1] === 0x8b) {
    // The tar package would transparently gunzip this a second time, past our size cap.
    throw new PolicyError("BUNDLE_TAR_INVALID", "the bundle is gzip inside gzip; a bundle is one gzip layer around a tar");
  }
  const entries: RawEntry[] = [];
  const seen = new Map<string, string>();
  let pending: Pending = {};
  let off = 0;
  for (;;) {
    if (off + BLOCK > tar.length) {
      throw new PolicyError("BUNDLE_TAR_INVALID", `the tar stream ends at byte ${tar.length} without an end-of-archive marker (truncated)`);
    }
    const h = tar.subarray(off, off + BLOCK);
    if (isZero(h)) {
      if (off + 2 * BLOCK > tar.length || !isZero(tar.subarray(off + BLOCK, off + 2 * BLOCK))) {
        throw new PolicyError("BUNDLE_TAR_INVALID", `a lone zero block at byte ${off}: the end-of-archive marker is two zero blocks`);
      }
      if (pending.path !== undefined || pending.size !== undefined || pending.linkpath || pending.hidden) {
        throw new PolicyError("BUNDLE_TAR_INVALID", "an extended header at the end of the archive describes no entry");
      }
      if (!isZero(tar.subarray(off + 2 * BLOCK))) {
        throw new PolicyError("BUNDLE_TAR_INVALID", `non-zero data after the end-of-archive marker at byte ${off}`);
      }
      if (entries.length === 0) throw new PolicyError("BUNDLE_TAR_INVALID", "the archive has no entries");
      return entries;
    }
    const where = `the header at byte ${off}`;
    const cksum = parseOctal(h, 148, 8);
    if (cksum === undefined || cksum !== headerSum(h)) throw new PolicyError("BUNDLE_TAR_INVALID", `${where} has a bad checksum`);
    const posix = h.toString("latin1", 257, 263) === "ustar\0" && h.toString("latin1", 263, 265) === "00";
    const gnu = h.toString("latin1", 257, 265) === "ustar  \0";
    if (!posix && !gnu) throw new PolicyError("BUNDLE_TAR_INVALID", `${where} is not a ustar header`);
    const headerSize = parseOctal(h, 124, 12);
    if (headerSize === undefined) throw new PolicyError("BUNDLE_TAR_INVALID", `${where} has a malformed size field`);
    const typeflag = String.fromCharCode(h[156]!);
    const dataOff = off + BLOCK;
    if (h[0] === 0) throw new PolicyError("BUNDLE_TAR_INVALID", `${where} has an empty name field`);
    const badField = numericFields(posix, h[475] === 0).find(([, o, n]) => !isOctalOrEmpty(h, o, n));
    if (badField !== undefined) throw new PolicyError("BUNDLE_TAR_INVALID", `${where} has a malformed ${badField[0]} field`);
    if (typeflag !== Flag.Link && typeflag !== Flag.Symlink && !isZero(h.subarray(157, 257))) {
      throw new PolicyError("BUNDLE_TAR_INVALID", `${where} is not a link but carries a link target`);
    }

    if (typeflag === Flag.Pax || typeflag === Flag.PaxGlobal || typeflag === Flag.GnuLongName || typeflag === Flag.GnuLongLink) {
      if (headerSize > l.maxExtendedHeaderBytes) {
        throw new PolicyError("BUNDLE_TOO_LARGE", `${where}: an extended header of ${headerSize} bytes exceeds the ${l.maxExtendedHeaderBytes}-byte limit`);
      }
      const body = dataBlock(tar, dataOff, headerSize, where);
      pending = applyMeta(typeflag, body, pending, where);
      off = dataOff + padded(headerSize);
      continue;
    }

    const index = entries.length + 1;
    if (index > l.maxEntries) {
      throw new PolicyError("BUNDLE_TOO_MANY_ENTRIES", `the archive has more than ${l.maxEntries} entries`);
    }
    const { name: headerName, hidden } = ustarName(h, posix);
    const name = pending.path ?? headerName;
    const label = `entry ${index} ${quote(name)}`;

    // Type before name: "this is a symlink" is the clearer message for a symlink named ../x.
    if (typeflag === Flag.Link || typeflag === Flag.Symlink) {
      const target = h.toString("latin1", 157, 257).replace(/\0[\s\S]*$/, "");
      throw new PolicyError("BUNDLE_LINK_FORBIDDEN", `${label} is a ${typeflag === Flag.Link ? "hard" : "symbolic"} link (to ${quote(target)})`, { details: { entry: name } });
    }
    if (typeflag !== Flag.File && typeflag !== Flag.OldFile) {
      const what = (Object.hasOwn(FORBIDDEN_TYPES, typeflag) ? FORBIDDEN_TYPES[typeflag] : undefined) ?? `an entry of unknown type ${quote(typeflag)}`;
      throw new PolicyError("BUNDLE_ENTRY_TYPE_FORBIDDEN", `${label} is ${what}; bundles hold regular files only`, { details: { entry: name } });
    }

    const problem = pathProblem(name);
    if (problem !== undefined) throw new PolicyError("BUNDLE_PATH_UNSAFE", `${label}: ${problem}`, { details: { entry: name } });
    if (headerName !== name) {
      const rawProblem = pathProblem(headerName);
      if (rawProblem !== undefined) {
        throw new PolicyError("BUNDLE_PATH_UNSAFE", `${label}: its ustar name ${quote(headerName)}, which a reader without pax support would use, is unsafe: ${rawProblem}`, { details: { entry: name } });
      }
    }
    if (hidden || pending.hidden) throw new PolicyError("BUNDLE_PATH_UNSAFE", `${label}: the header's name field hides bytes after its NUL terminator`, { details: { entry: name } });

    const size = pending.size ?? headerSize;
    if (size > l.maxEntryBytes) {
      throw new PolicyError("BUNDLE_TOO_LARGE", `${label} is ${size} bytes; the limit is ${l.maxEntryBytes} bytes per file`, { details: { entry: name } });
    }
    if (pending.linkpath) throw new PolicyError("BUNDLE_TAR_INVALID", `${label} is a regular file that carries a link target`);

    const folded = name.toLowerCase();
    const earlier = seen.get(folded);
    if (earlier !== undefined) {
      throw new PolicyError(
        "BUNDLE_DUPLICATE_ENTRY",
        earlier === name ? `${label} appears more than once` : `${label} and ${quote(earlier)} differ only in letter case`,
        { details: { entry: name } },
      );
    }
    seen.set(folded, name);

    entries.push({ index, name, data: dataBlock(tar, dataOff, size, label) });
    pending = {};
    off = dataOff + padded(size);
  }
}

/** Folds a pax / GNU long-name header into what applies to the next file entry. */
function applyMeta(typeflag: string, body: Buffer, pending: Pending, where: string): Pending {
  if (typeflag === Flag.GnuLongName) {
    const nul = body.indexOf(0);
    return { ...pending, path: cString(body), hidden: nul >= 0 && !isZero(body.subarray(nul)) };
  }
  if (typeflag === Flag.GnuLongLink) return { ...pending, linkpath: true };
  const records = parsePaxRecords(body, where);
  const global = typeflag === Flag.PaxGlobal;
  const next: Pending = { ...pending };
  for (const [key, value] of records) {
    if ((global ? PAX_GLOBAL_FORBIDDEN_KEYS : PAX_FORBIDDEN_KEYS).has(key)) {
      throw new PolicyError("BUNDLE_TAR_INVALID", `${where}: a ${global ? "global " : ""}pax header may not set ${quote(key)}`);
    }
    if (global) continue;
    if (key === "path") next.path = value;
    else if (key === "linkpath") next.linkpath = true;
    else if (key === "size") {
      if (!/^\d{1,15}$/.test(value)) throw new PolicyError("BUNDLE_TAR_INVALID", `${where}: pax size ${quote(value)} is not a decimal number`);
      next.size = Number(value);
    }
  }
  return next;
}

/**
 * Strict pax records: `<decimal length> <key>=<value>\n`, where the length counts
 * the whole record; the body must be exactly a sequence of such records. (Values
 * are taken as bytes, latin1-decoded: names must be ASCII anyway.)
 */
function parsePaxRecords(body: Buffer, where: string): [string, string][] {
  const out: [string, string][] = [];
  let pos = 0;
  while (pos < body.length) {
    const space = body.indexOf(0x20, pos);
    const lenText = space < 0 ? "" : body.toString("latin1", pos, space);
    if (!/^[1-9]\d{0,8}$/.test(lenText)) throw new PolicyError("BUNDLE_TAR_INVALID", `${where}: malformed pax record length at byte ${pos} of the extended header`);
    const end = pos + Number(lenText);
    if (end > body.length || body[end - 1] !== 0x0a) throw new PolicyError("BUNDLE_TAR_INVALID", `${where}: a pax record overruns the extended header or lacks its newline`);
    const record = body.toString("latin1", space + 1, end - 1);
    const eq = record.indexOf("=");
    if (eq <= 0) throw new PolicyError("BUNDLE_TAR_INVALID", `${where}: a pax record has no key`);
    out.push([record.slice(0, eq), record.slice(eq + 1)]);
    pos = end;
  }
  return out;
}

/** The ustar name (with the POSIX prefix), and whether either field hides bytes after its NUL. */
function ustarName(h: Buffer, posix: boolean): { name: string; hidden: boolean } {
  const name = field(h, 0, 100);
  let prefix = { text: "", hidden: false };
  if (posix) {
    // The tar package reads a 155-byte prefix when byte 475 is set, else 130 bytes followed by atime/ctime.
    prefix = field(h, 345, h[475] !== 0 ? 155 : 130);
  }
  return { name: prefix.text === "" ? name.text : `${prefix.text}/${name.text}`, hidden: name.hidden || prefix.hidden };
}

function field(h: Buffer, off: number, len: number): { text: string; hidden: boolean } {
  const f = h.subarray(off, off + len);
  const nul = f.indexOf(0);
  if (nul < 0) return { text: f.toString("latin1"), hidden: false };
  return { text: f.toString("latin1", 0, nul), hidden: !isZero(f.subarray(nul)) };
}

function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.toString("latin1", 0, nul < 0 ? b.length : nul);
}

/** An octal numeric field: digits, optionally space-padded, NUL- or space-terminated. Base-256 and garbage are refused. */
function parseOctal(h: Buffer, off: number, len: number): number | undefined {
  const text = cString(h.subarray(off, off + len)).trim();
  return /^[0-7]{1,12}$/.test(text) ? parseInt(text, 8) : undefined;
}

/**
 * The numeric fields besides size and checksum, as [name, offset, length]. The
 * tar package decodes them all (base-256 included, throwing on bad encodings),
 * so the walk requires each to be octal or empty, and nothing hides there.
 * atime/ctime exist only when the POSIX prefix is the short (130-byte) form.
 */
function numericFields(posix: boolean, shortPrefix: boolean): [string, number, number][] {
  const fields: [string, number, number][] = [["mode", 100, 8], ["uid", 108, 8], ["gid", 116, 8], ["mtime", 136, 12]];
  if (posix) fields.push(["devmajor", 329, 8], ["devminor", 337, 8]);
  if (posix && shortPrefix) fields.push(["atime", 476, 12], ["ctime", 488, 12]);
  return fields;
}

function isOctalOrEmpty(h: Buffer, off: number, len: number): boolean {
  const f = h.subarray(off, off + len);
  const nul = f.indexOf(0);
  if (nul >= 0 && !isZero(f.subarray(nul))) return false;
  return /^ *[0-7]* *$/.test(f.toString("latin1", 0, nul < 0 ? len : nul));
}

/** The ustar header checksum: unsigned byte sum with the checksum field read as spaces. */
function headerSum(h: Buffer): number {
  let sum = 8 * 0x20;
  for (let i = 0; i < 148; i++) sum += h[i]!;
  for (let i = 156; i < BLOCK; i++) sum += h[i]!;
  return sum;
}

/** The `size` bytes at `off`; the padding to the block boundary must exist and be zero. */
function dataBlock(tar: Buffer, off: number, size: number, what: string): Buffer {
  const end = off + padded(size);
  if (end > tar.length) throw new PolicyError("BUNDLE_TAR_INVALID", `${what}: the archive is truncated (the entry needs ${size} bytes)`);
  if (!isZero(tar.subarray(off + size, end))) throw new PolicyError("BUNDLE_TAR_INVALID", `${what}: non-zero bytes in the block padding`);
  return tar.subarray(off, off + size);
}

const padded = (n: number): number => Math.ceil(n / BLOCK) * BLOCK;

function isZero(b: Buffer): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
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

// ---------------------------------------------------------------------------
// Step 3: second opinion from the tar package

interface ParsedEntry {
  path: string;
  type: string;
  size: number;
  chunks: Buffer[];
}

/**
 * Parses the same bytes with the `tar` package's Parser in strict mode (fed from
 * memory; it runs synchronously) and requires exactly the entries the walk
 * found: same order, names, types, sizes and bytes. A disagreement means the
 * archive reads differently in different tools (a smuggling attempt or a bug),
 * and is refused.
 */
function crossCheckWithTarParser(tar: Buffer, entries: readonly RawEntry[], l: BundleLimits): void {
  const parsed: ParsedEntry[] = [];
  let failure: string | undefined;
  let ended = false;
  const parser = new Parser({ strict: true, brotli: false, zstd: false, maxMetaEntrySize: l.maxExtendedHeaderBytes });
  parser.on("error", (e: unknown) => {
    failure ??= e instanceof Error ? e.message : String(e);
  });
  parser.on("ignoredEntry", (e: ReadEntry) => {
    failure ??= `it skipped entry ${quote(String(e.path))}`;
  });
  parser.on("entry", (e: ReadEntry) => {
    if (parsed.length >= entries.length) {
      failure ??= "it found more entries";
      e.resume();
      return;
    }
    const p: ParsedEntry = { path: String(e.path), type: String(e.type), size: e.size, chunks: [] };
    parsed.push(p);
    e.on("data", (c: Buffer) => p.chunks.push(c));
  });
  parser.on("end", () => {
    ended = true;
  });
  try {
    parser.end(tar);
  } catch (e) {
    failure ??= e instanceof Error ? e.message : String(e);
  }
  if (failure === undefined && !ended) failure = "it did not finish";
  if (failure === undefined && parsed.length !== entries.length) failure = `it found ${parsed.length} entries, not ${entries.length}`;
  for (let i = 0; failure === undefined && i < entries.length; i++) {
    const want = entries[i]!;
    const got = parsed[i]!;
    if (got.path !== want.name || got.type !== "File" || got.size !== want.data.length || !Buffer.concat(got.chunks).equals(want.data)) {
      failure = `it reads entry ${want.index} ${quote(want.name)} as ${got.type} ${quote(got.path)} of ${got.size} bytes`;
    }
  }
  if (failure !== undefined) {
    throw new PolicyError("BUNDLE_TAR_INVALID", `the tar archive is malformed: the tar parser disagrees with the header walk (${printable(failure)})`);
  }
}

// ---------------------------------------------------------------------------
// Step 4: manifest

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function decodeUtf8(b: Uint8Array): string | undefined {
  try {
    return UTF8.decode(b);
  } catch {
    return undefined;
  }
}

/** Parses and validates manifest.json, collecting every bad field, and requires its canonical form. */
function parseManifest(entries: readonly RawEntry[]): BundleManifest {
  const entry = entries.find((e) => e.name === MANIFEST_NAME);
  if (entry === undefined) throw new PolicyError("BUNDLE_MANIFEST_INVALID", "the archive has no manifest.json");
  const text = decodeUtf8(entry.data);
  if (text === undefined) throw new PolicyError("BUNDLE_MANIFEST_INVALID", "manifest.json is not UTF-8 text");
  let value: unknown;
  let protoKey = false;
  try {
    value = JSON.parse(text, (key, v: unknown) => {
      if (key === "__proto__") protoKey = true;
      return v;
    });
  } catch (e) {
    throw new PolicyError("BUNDLE_MANIFEST_INVALID", `manifest.json is not JSON: ${printable(e instanceof Error ? e.message : String(e))}`, { cause: e });
  }
  if (protoKey) throw new PolicyError("BUNDLE_MANIFEST_INVALID", 'manifest.json has a "__proto__" key', { details: { fields: ["__proto__"] } });
  const r = bundleManifestSchema.safeParse(value);
  if (!r.success) {
    const problems = fieldProblems(r.error.issues);
    const list = problems.map((p) => `${p.field}: ${p.problem}`).join("; ");
    throw new PolicyError("BUNDLE_MANIFEST_INVALID", `manifest.json has ${problems.length} invalid field(s): ${printable(list, 2000)}`, {
      details: { fields: problems.map((p) => p.field) },
    });
  }
  const d = r.data;
  const manifest: BundleManifest = {
    name: d.name,
    policy_bundle_version: d.policy_bundle_version,
    required_runtime_version: d.required_runtime_version,
    bundle_hash: d.bundle_hash,
    created_at: d.created_at,
    engine: d.engine,
    files: Object.fromEntries(Object.keys(d.files).sort(compareNames).map((k) => [k, d.files[k]!])),
  };
  if (serializeManifest(manifest) !== text) {
    throw new PolicyError("BUNDLE_MANIFEST_INVALID", "manifest.json is valid but not in the canonical form `policy build` writes (key order, spacing or duplicate keys differ)");
  }
  return manifest;
}

// ---------------------------------------------------------------------------
// Step 5: files against the manifest

function verifyFiles(manifest: BundleManifest, entries: readonly RawEntry[]): PolicyFile[] {
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

// ---------------------------------------------------------------------------
// Messages: attacker-controlled text is quoted, escaped and bounded

/** `"name"` with quotes, backslashes, control and non-ASCII characters escaped, cut to `max` characters. */
export function quote(s: string, max = 100): string {
  const cut = s.length > max;
  const body = (cut ? s.slice(0, max) : s).replace(/["\\]|[^\x20-\x7e]/g, (c) =>
    c === '"' || c === "\\" ? `\\${c}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return `"${body}"${cut ? "…" : ""}`;
}

function printable(s: string, max = 300): string {
  const cleaned = s.replace(/[^\x20-\x7e]/g, "?");
  return cleaned.length > max ? `${cleaned.slice(0, max)}…` : cleaned;
}
