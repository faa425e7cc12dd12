/**
 * The ustar header layout, as the strict walk reads it: field decoding that
 * refuses anything the `tar` package might read differently. Shared with the
 * builder for the block size.
 */
import { ArchiveError } from "./errors.js";

/** A tar block: every header is one, every entry's data is padded to a multiple. */
export const BLOCK = 512;

/** `n` rounded up to a whole number of blocks. */
export const padded = (n: number): number => Math.ceil(n / BLOCK) * BLOCK;

/** ustar type flags the walk treats specially; every other type is refused. */
export const Flag = {
  File: "0",
  OldFile: "\0",
  Link: "1",
  Symlink: "2",
  Pax: "x",
  PaxGlobal: "g",
  GnuLongName: "L",
  GnuLongLink: "K",
} as const;

export function isZero(b: Buffer): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}

/** The text up to the first NUL (all of `b` when there is none), latin1-decoded. */
export function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.toString("latin1", 0, nul < 0 ? b.length : nul);
}

/** The ustar name (with the POSIX prefix), and whether either field hides bytes after its NUL. */
export function ustarName(h: Buffer, posix: boolean): { name: string; hidden: boolean } {
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

/** An octal numeric field: digits, optionally space-padded, NUL- or space-terminated. Base-256 and garbage are refused. */
export function parseOctal(h: Buffer, off: number, len: number): number | undefined {
  const text = cString(h.subarray(off, off + len)).trim();
  return /^[0-7]{1,12}$/.test(text) ? parseInt(text, 8) : undefined;
}

/**
 * The numeric fields besides size and checksum, as [name, offset, length]. The
 * tar package decodes them all (base-256 included, throwing on bad encodings),
 * so the walk requires each to be octal or empty, and nothing hides there.
 * atime/ctime exist only when the POSIX prefix is the short (130-byte) form.
 */
export function numericFields(posix: boolean, shortPrefix: boolean): [string, number, number][] {
  const fields: [string, number, number][] = [["mode", 100, 8], ["uid", 108, 8], ["gid", 116, 8], ["mtime", 136, 12]];
  if (posix) fields.push(["devmajor", 329, 8], ["devminor", 337, 8]);
  if (posix && shortPrefix) fields.push(["atime", 476, 12], ["ctime", 488, 12]);
  return fields;
}

export function isOctalOrEmpty(h: Buffer, off: number, len: number): boolean {
  const f = h.subarray(off, off + len);
  const nul = f.indexOf(0);
  if (nul >= 0 && !isZero(f.subarray(nul))) return false;
  return /^ *[0-7]* *$/.test(f.toString("latin1", 0, nul < 0 ? len : nul));
}

/** The ustar header checksum: unsigned byte sum with the checksum field read as spaces. */
export function headerSum(h: Buffer): number {
  let sum = 8 * 0x20;
  for (let i = 0; i < 148; i++) sum += h[i]!;
  for (let i = 156; i < BLOCK; i++) sum += h[i]!;
  return sum;
}

/** The `size` bytes at `off`; the padding to the block boundary must exist and be zero. */
export function dataBlock(tar: Buffer, off: number, size: number, what: string): Buffer {
  const end = off + padded(size);
  if (end > tar.length) throw new ArchiveError("ARCHIVE_TAR_INVALID", `${what}: the archive is truncated (the entry needs ${size} bytes)`);
  if (!isZero(tar.subarray(off + size, end))) throw new ArchiveError("ARCHIVE_TAR_INVALID", `${what}: non-zero bytes in the block padding`);
  return tar.subarray(off, off + size);
}
