/** Size and count limits of the hostile-input reader, and the entry-name rules. */

/** Size and count limits applied while reading an archive (the caller picks them; nothing is unbounded). */
export interface ArchiveLimits {
  /** The `.tar.gz` itself. */
  maxCompressedBytes: number;
  /** The tar stream after gunzip; decompression stops at this size. */
  maxDecompressedBytes: number;
  /** Any one file in the archive. */
  maxEntryBytes: number;
  /** File entries in the archive (pax extended headers not counted). */
  maxEntries: number;
  /** The body of one pax or GNU long-name header. */
  maxExtendedHeaderBytes: number;
}

/** How the reader names what it reads in messages ("bundle", "layer"), and whether entries may be in directories. */
export interface ArchiveReadContext {
  /** Default "archive". */
  what?: string;
  /** Refuse any `/` in a name (the archive is one flat folder). Default false. */
  flat?: boolean;
}

/**
 * Why `name` may not appear in an archive, or undefined when it may. Names are
 * printable ASCII so look-alike Unicode and normalisation forms cannot disguise
 * one name as another; traversal, absolute and drive-letter paths and
 * backslashes are refused; with `flat`, so is any `/`.
 */
export function entryNameProblem(name: string, ctx: Required<ArchiveReadContext>): string | undefined {
  if (name.length === 0) return "empty name";
  if (name.length > 255) return "name longer than 255 bytes";
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this looks for
  if (/[\x00-\x1f\x7f-\x9f]/.test(name)) return "control character in the name";
  if (/[^\x20-\x7e]/.test(name)) return "non-ASCII name (look-alike characters and Unicode normalisation make such names ambiguous)";
  if (name.includes("\\")) return "backslash in the name (a path separator on Windows)";
  if (name.split("/").includes("..")) return "'..' component (path traversal)";
  if (name.startsWith("/")) return "absolute path";
  if (/^[A-Za-z]:/.test(name)) return "drive-letter path";
  if (ctx.flat && name.includes("/")) return `'/' in the name (${ctx.what}s are flat: no directories)`;
  if (name === "." || name.split("/").includes(".") || name.split("/").includes("")) return name === "." ? "'.' is not a file name" : "empty or '.' path component";
  return undefined;
}
