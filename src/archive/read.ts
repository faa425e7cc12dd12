/**
 * Reading a `.tar.gz` from a source we do not control (a registry, a disk, an
 * operator): every byte is treated as hostile. Sizes are bounded before
 * anything is allocated; the tar stream is walked by an independent strict
 * scanner and then parsed again by the `tar` package (the two must agree);
 * only regular files with safe, unique names come out. Nothing is written to
 * disk.
 */
import { checkContainer, gunzipBounded } from "./gunzip-bounded.js";
import type { ArchiveLimits, ArchiveReadContext } from "./limits.js";
import { crossCheckWithTarParser } from "./tar-cross-check.js";
import { scanTar } from "./tar-walk.js";
import type { RawEntry } from "./tar-walk.js";

/** Options of {@link readTarGz}. */
export interface ReadTarGzOptions extends ArchiveReadContext {
  limits: ArchiveLimits;
}

/**
 * The regular files of a hostile `.tar.gz`, in archive order. Steps, each
 * failing with its own {@link ArchiveError} code:
 * 1. size and gzip (`ARCHIVE_TOO_LARGE`, `ARCHIVE_NOT_GZIP`; a corrupt stream, trailing bytes or a
 *    bomb past `maxDecompressedBytes` are `ARCHIVE_TAR_INVALID` / `ARCHIVE_TOO_LARGE`);
 * 2. a strict walk over the tar headers (`ARCHIVE_TAR_INVALID`, `ARCHIVE_TOO_MANY_ENTRIES`,
 *    `ARCHIVE_TOO_LARGE`, `ARCHIVE_LINK_FORBIDDEN`, `ARCHIVE_ENTRY_TYPE_FORBIDDEN`,
 *    `ARCHIVE_PATH_UNSAFE`, `ARCHIVE_DUPLICATE_ENTRY`);
 * 3. a second parse by the `tar` package's strict Parser, which must see the same entries
 *    with the same bytes (`ARCHIVE_TAR_INVALID`).
 *
 * ### Examples
 * ```ts
 * const files = await readTarGz(bytes, { limits, what: "bundle", flat: true });
 * for (const f of files) console.log(f.index, f.name, f.data.length);
 * ```
 */
export async function readTarGz(bytes: Uint8Array, opts: ReadTarGzOptions): Promise<RawEntry[]> {
  const what = opts.what ?? "archive";
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  checkContainer(input, opts.limits, what);
  const tar = await gunzipBounded(input, opts.limits, what);
  const entries = scanTar(tar, opts.limits, { what, flat: opts.flat ?? false });
  crossCheckWithTarParser(tar, entries, opts.limits);
  return entries;
}
