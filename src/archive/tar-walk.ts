/** Step 2 of reading an archive: a strict walk over the tar headers, independent of the `tar` package. */
import { ArchiveError } from "./errors.js";
import { entryNameProblem } from "./limits.js";
import type { ArchiveLimits, ArchiveReadContext } from "./limits.js";
import { quote } from "../lib/index.js";
import { applyMeta, isExtendedHeader } from "./tar-extended.js";
import type { Pending } from "./tar-extended.js";
import { BLOCK, Flag, dataBlock, headerSum, isOctalOrEmpty, isZero, numericFields, padded, parseOctal, ustarName } from "./tar-header.js";

/** One file entry as the raw headers describe it. */
export interface RawEntry {
  /** 1-based position among file entries, for messages. */
  readonly index: number;
  /** The effective name (pax `path` / GNU long name if present, else the ustar prefix/name). */
  readonly name: string;
  readonly data: Buffer;
}

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
 * Walks the tar stream header by header, independently of the `tar` package:
 * checksums, ustar magic, octal fields, bounds, zero padding and the
 * end-of-archive marker are all required, and each file entry is checked for
 * type, name and duplicates as soon as its header is read, so the first problem
 * in archive order decides the error.
 *
 * Duplicates: exact duplicates are refused, and so are names that differ only in
 * ASCII letter case (they would collide when unpacked on macOS or Windows). Names
 * are ASCII only (see {@link entryNameProblem}), so Unicode case folding and
 * normalisation (NFC/NFD look-alikes) cannot produce collisions we miss.
 */
export function scanTar(tar: Buffer, l: ArchiveLimits, context: ArchiveReadContext = {}): RawEntry[] {
  const ctx: Required<ArchiveReadContext> = { what: context.what ?? "archive", flat: context.flat ?? false };
  if (tar.length >= 2 && tar[0] === 0x1f && tar[1] === 0x8b) {
    // The tar package would transparently gunzip this a second time, past our size cap.
    throw new ArchiveError("ARCHIVE_TAR_INVALID", `the ${ctx.what} is gzip inside gzip; a ${ctx.what} is one gzip layer around a tar`);
  }
  const entries: RawEntry[] = [];
  const seen = new Map<string, string>();
  let pending: Pending = {};
  let off = 0;
  for (;;) {
    if (off + BLOCK > tar.length) {
      throw new ArchiveError("ARCHIVE_TAR_INVALID", `the tar stream ends at byte ${tar.length} without an end-of-archive marker (truncated)`);
    }
    const h = tar.subarray(off, off + BLOCK);
    if (isZero(h)) {
      checkEndOfArchive(tar, off, pending, entries.length);
      return entries;
    }
    const where = `the header at byte ${off}`;
    const { posix, headerSize, typeflag } = checkHeader(h, where);
    const dataOff = off + BLOCK;

    if (isExtendedHeader(typeflag)) {
      if (headerSize > l.maxExtendedHeaderBytes) {
        throw new ArchiveError("ARCHIVE_TOO_LARGE", `${where}: an extended header of ${headerSize} bytes exceeds the ${l.maxExtendedHeaderBytes}-byte limit`);
      }
      const body = dataBlock(tar, dataOff, headerSize, where);
      pending = applyMeta(typeflag, body, pending, where);
      off = dataOff + padded(headerSize);
      continue;
    }

    const index = entries.length + 1;
    const { name, size, label } = checkFileEntry(h, { index, posix, typeflag, headerSize, pending }, l, ctx);
    checkDuplicate(seen, name, label);
    entries.push({ index, name, data: dataBlock(tar, dataOff, size, label) });
    pending = {};
    off = dataOff + padded(size);
  }
}

/** At the first zero block: it must be a complete end-of-archive marker with nothing after it, ending a non-empty archive. */
function checkEndOfArchive(tar: Buffer, off: number, pending: Pending, entryCount: number): void {
  if (off + 2 * BLOCK > tar.length || !isZero(tar.subarray(off + BLOCK, off + 2 * BLOCK))) {
    throw new ArchiveError("ARCHIVE_TAR_INVALID", `a lone zero block at byte ${off}: the end-of-archive marker is two zero blocks`);
  }
  if (pending.path !== undefined || pending.size !== undefined || pending.linkpath || pending.hidden) {
    throw new ArchiveError("ARCHIVE_TAR_INVALID", "an extended header at the end of the archive describes no entry");
  }
  if (!isZero(tar.subarray(off + 2 * BLOCK))) {
    throw new ArchiveError("ARCHIVE_TAR_INVALID", `non-zero data after the end-of-archive marker at byte ${off}`);
  }
  if (entryCount === 0) throw new ArchiveError("ARCHIVE_TAR_INVALID", "the archive has no entries");
}

/** Checks what every header must get right (checksum, magic, numeric fields), whatever its type. */
function checkHeader(h: Buffer, where: string): { posix: boolean; headerSize: number; typeflag: string } {
  const cksum = parseOctal(h, 148, 8);
  if (cksum === undefined || cksum !== headerSum(h)) throw new ArchiveError("ARCHIVE_TAR_INVALID", `${where} has a bad checksum`);
  const posix = h.toString("latin1", 257, 263) === "ustar\0" && h.toString("latin1", 263, 265) === "00";
  const gnu = h.toString("latin1", 257, 265) === "ustar  \0";
  if (!posix && !gnu) throw new ArchiveError("ARCHIVE_TAR_INVALID", `${where} is not a ustar header`);
  const headerSize = parseOctal(h, 124, 12);
  if (headerSize === undefined) throw new ArchiveError("ARCHIVE_TAR_INVALID", `${where} has a malformed size field`);
  const typeflag = String.fromCharCode(h[156]!);
  if (h[0] === 0) throw new ArchiveError("ARCHIVE_TAR_INVALID", `${where} has an empty name field`);
  const badField = numericFields(posix, h[475] === 0).find(([, o, n]) => !isOctalOrEmpty(h, o, n));
  if (badField !== undefined) throw new ArchiveError("ARCHIVE_TAR_INVALID", `${where} has a malformed ${badField[0]} field`);
  if (typeflag !== Flag.Link && typeflag !== Flag.Symlink && !isZero(h.subarray(157, 257))) {
    throw new ArchiveError("ARCHIVE_TAR_INVALID", `${where} is not a link but carries a link target`);
  }
  return { posix, headerSize, typeflag };
}

interface FileHeader {
  index: number;
  posix: boolean;
  typeflag: string;
  headerSize: number;
  pending: Pending;
}

/** Checks a file entry's count, type, name and size; returns its effective name and size, and the label messages use. */
function checkFileEntry(h: Buffer, f: FileHeader, l: ArchiveLimits, ctx: Required<ArchiveReadContext>): { name: string; size: number; label: string } {
  const { index, typeflag, pending } = f;
  if (index > l.maxEntries) {
    throw new ArchiveError("ARCHIVE_TOO_MANY_ENTRIES", `the archive has more than ${l.maxEntries} entries`);
  }
  const { name: headerName, hidden } = ustarName(h, f.posix);
  const name = pending.path ?? headerName;
  const label = `entry ${index} ${quote(name)}`;

  // Type before name: "this is a symlink" is the clearer message for a symlink named ../x.
  if (typeflag === Flag.Link || typeflag === Flag.Symlink) {
    const target = h.toString("latin1", 157, 257).replace(/\0[\s\S]*$/, "");
    throw new ArchiveError("ARCHIVE_LINK_FORBIDDEN", `${label} is a ${typeflag === Flag.Link ? "hard" : "symbolic"} link (to ${quote(target)})`, { details: { entry: name } });
  }
  if (typeflag !== Flag.File && typeflag !== Flag.OldFile) {
    const what = (Object.hasOwn(FORBIDDEN_TYPES, typeflag) ? FORBIDDEN_TYPES[typeflag] : undefined) ?? `an entry of unknown type ${quote(typeflag)}`;
    throw new ArchiveError("ARCHIVE_ENTRY_TYPE_FORBIDDEN", `${label} is ${what}; ${ctx.what}s hold regular files only`, { details: { entry: name } });
  }

  const problem = entryNameProblem(name, ctx);
  if (problem !== undefined) throw new ArchiveError("ARCHIVE_PATH_UNSAFE", `${label}: ${problem}`, { details: { entry: name } });
  if (headerName !== name) {
    const rawProblem = entryNameProblem(headerName, ctx);
    if (rawProblem !== undefined) {
      throw new ArchiveError("ARCHIVE_PATH_UNSAFE", `${label}: its ustar name ${quote(headerName)}, which a reader without pax support would use, is unsafe: ${rawProblem}`, { details: { entry: name } });
    }
  }
  if (hidden || pending.hidden) throw new ArchiveError("ARCHIVE_PATH_UNSAFE", `${label}: the header's name field hides bytes after its NUL terminator`, { details: { entry: name } });

  const size = pending.size ?? f.headerSize;
  if (size > l.maxEntryBytes) {
    throw new ArchiveError("ARCHIVE_TOO_LARGE", `${label} is ${size} bytes; the limit is ${l.maxEntryBytes} bytes per file`, { details: { entry: name } });
  }
  if (pending.linkpath) throw new ArchiveError("ARCHIVE_TAR_INVALID", `${label} is a regular file that carries a link target`);
  return { name, size, label };
}

/** Refuses a name seen before, exactly or up to ASCII letter case; records it otherwise. */
function checkDuplicate(seen: Map<string, string>, name: string, label: string): void {
  const folded = name.toLowerCase();
  const earlier = seen.get(folded);
  if (earlier !== undefined) {
    throw new ArchiveError(
      "ARCHIVE_DUPLICATE_ENTRY",
      earlier === name ? `${label} appears more than once` : `${label} and ${quote(earlier)} differ only in letter case`,
      { details: { entry: name } },
    );
  }
  seen.set(folded, name);
}
