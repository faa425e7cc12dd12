/**
 * Hand-made tar streams for hostile-input tests. Headers are written field by
 * field here (not with the `tar` package the reader uses), so tests can make
 * what no well-behaved writer would: symlinks, hard links, devices, `../x`,
 * `/etc/x`, duplicates, bad checksums, hidden bytes after a name's NUL,
 * lying pax records, truncation.
 */
import { gzipSync } from "node:zlib";

export const BLOCK = 512;

export interface RawHeader {
  /** Name field bytes (up to 100); a string is written as UTF-8. */
  name: string | Buffer;
  size?: number;
  /** Type flag character: "0" file, "1" hard link, "2" symlink, "3" char dev, "5" dir, "x" pax … */
  type?: string;
  linkname?: string;
  /** ustar prefix field (up to 155 bytes). */
  prefix?: string;
  mode?: number;
  /** "posix" (`ustar\0` `00`, default), "gnu" (`ustar  \0`) or "none" (v7, no magic). */
  magic?: "posix" | "gnu" | "none";
  /** Replaces the computed checksum (to make a bad one). */
  checksum?: number;
  /** Raw size field text, replacing the octal encoding of `size` (to make a malformed one). */
  sizeField?: string;
}

function writeOctal(b: Buffer, off: number, len: number, n: number): void {
  b.write(`${n.toString(8).padStart(len - 1, "0")}\0`, off, len, "latin1");
}

/** One 512-byte ustar header with a correct checksum (unless `checksum` overrides it). */
export function ustarHeader(h: RawHeader): Buffer {
  const b = Buffer.alloc(BLOCK);
  const name = typeof h.name === "string" ? Buffer.from(h.name, "utf8") : h.name;
  if (name.length > 100) throw new Error("name field is 100 bytes");
  name.copy(b, 0);
  writeOctal(b, 100, 8, h.mode ?? 0o644);
  writeOctal(b, 108, 8, 0);
  writeOctal(b, 116, 8, 0);
  if (h.sizeField !== undefined) b.write(h.sizeField, 124, 12, "latin1");
  else writeOctal(b, 124, 12, h.size ?? 0);
  writeOctal(b, 136, 12, 0);
  b.write((h.type ?? "0").slice(0, 1), 156, 1, "latin1");
  if (h.linkname !== undefined) b.write(h.linkname, 157, 100, "utf8");
  const magic = h.magic ?? "posix";
  if (magic === "posix") b.write("ustar\u000000", 257, 8, "latin1");
  if (magic === "gnu") b.write("ustar  \u0000", 257, 8, "latin1");
  if (h.prefix !== undefined) b.write(h.prefix, 345, 155, "utf8");
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  const cksum = h.checksum ?? sum;
  b.write(`${cksum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
  return b;
}

/** Zero bytes up to the next block boundary after `size` bytes. */
export function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** A header plus its data and padding. `size` defaults to the data length (set it to lie). */
export function tarEntry(h: RawHeader & { data?: Buffer | string }): Buffer {
  const data = typeof h.data === "string" ? Buffer.from(h.data, "utf8") : (h.data ?? Buffer.alloc(0));
  return Buffer.concat([ustarHeader({ ...h, size: h.size ?? data.length }), data, padding(data.length)]);
}

/** A pax record `"<len> key=value\n"` with the self-inclusive length. */
export function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bodyLen = Buffer.byteLength(body);
  let len = bodyLen + 1;
  while (String(len).length + bodyLen !== len) len++;
  return `${len}${body}`;
}

/** A pax extended ('x') or global ('g') header carrying `records` (already encoded, or key/value pairs). */
export function paxEntry(records: string | Record<string, string>, global = false): Buffer {
  const body = typeof records === "string" ? records : Object.entries(records).map(([k, v]) => paxRecord(k, v)).join("");
  return tarEntry({ name: "PaxHeader/x", type: global ? "g" : "x", data: body });
}

/** The end-of-archive marker: two zero blocks. */
export const END = Buffer.alloc(2 * BLOCK);

/** Entries followed by the end-of-archive marker. */
export function tarOf(entries: readonly Buffer[]): Buffer {
  return Buffer.concat([...entries, END]);
}

/** gzip, like the builder (no name, no mtime). */
export function gzip(b: Uint8Array): Buffer {
  return gzipSync(b);
}

/** gzip(tar(entries)): the usual shape of a hostile bundle. */
export function tgz(entries: readonly Buffer[]): Buffer {
  return gzip(tarOf(entries));
}
