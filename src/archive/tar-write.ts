/**
 * Deterministic tar+gzip writing: the same entries give the same bytes on any
 * host, in any time zone, under any umask, at any time. Every header field is
 * pinned except name, size, type and the caller's mode; the gzip header is
 * pinned too.
 */
import { gzipSync } from "node:zlib";
import { Header, Pax } from "tar";
import { quote } from "../lib/index.js";
import { ArchiveError } from "./errors.js";
import { BLOCK, padded } from "./tar-header.js";

/** A regular file to write. */
export interface TarFileEntry {
  readonly type?: "file";
  /** Relative path with `/` separators, no `..`, no leading `/`. */
  readonly name: string;
  readonly content: Uint8Array;
  /** Permission bits; only 0o644 (default) and 0o755 are written, so a host's umask never leaks in. */
  readonly mode?: 0o644 | 0o755;
}

/** A directory to write (mode 0o755); its name is written with a trailing `/`. */
export interface TarDirectoryEntry {
  readonly type: "directory";
  readonly name: string;
}

export type TarEntry = TarFileEntry | TarDirectoryEntry;

/** Longest name stored in the ustar name field alone; longer names get a pax `path` record. */
const USTAR_NAME_MAX = 99;
/** Every entry's mtime: the epoch. */
const EPOCH = new Date(0);

/**
 * A POSIX ustar stream of the entries in the given order (callers sort: order
 * is content). mtime 0, uid/gid 0, empty user and group names, file mode
 * 0o644 or 0o755, directories 0o755; names of 100 bytes or more carry a pax
 * `path` record. GNU tar, bsdtar and the `tar` package read it.
 */
export function tarArchive(entries: readonly TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const dir = e.type === "directory";
    const name = dir ? `${e.name.replace(/\/+$/, "")}/` : e.name;
    checkEntry(e, name);
    const content = dir ? Buffer.alloc(0) : Buffer.from(e.content.buffer, e.content.byteOffset, e.content.byteLength);
    if (Buffer.byteLength(name) > USTAR_NAME_MAX) {
      const body = Buffer.from(new Pax({ path: name }).encodeBody(), "utf8");
      blocks.push(header(`PaxHeader/${name}`.slice(0, USTAR_NAME_MAX), "ExtendedHeader", body.length, 0o644), body, zeroPad(body.length));
    }
    blocks.push(header(name.slice(0, USTAR_NAME_MAX), dir ? "Directory" : "File", content.length, dir ? 0o755 : (e.mode ?? 0o644)), content, zeroPad(content.length));
  }
  blocks.push(Buffer.alloc(2 * BLOCK)); // end-of-archive marker
  return Buffer.concat(blocks);
}

function checkEntry(e: TarEntry, name: string): void {
  // The writer's input is ours, but a bad name would make an archive our own reader refuses.
  if (name === "/" || name.startsWith("/") || name.split("/").includes("..") || name.includes("\\") || /[^\x20-\x7e]/.test(name)) {
    throw new ArchiveError("ARCHIVE_ENTRY_INVALID", `cannot write entry ${quote(name)}: names are relative, printable ASCII, without '..' or '\\'`);
  }
  if (e.type !== "directory" && e.mode !== undefined && e.mode !== 0o644 && e.mode !== 0o755) {
    throw new ArchiveError("ARCHIVE_ENTRY_INVALID", `cannot write entry ${quote(name)} with mode ${(e.mode as number).toString(8)}: only 644 and 755 are written`);
  }
}

function header(path: string, type: "File" | "Directory" | "ExtendedHeader", size: number, mode: number): Buffer {
  const h = new Header({ path, type, size, mode, uid: 0, gid: 0, mtime: EPOCH, uname: "", gname: "", linkpath: "" });
  const block = Buffer.alloc(BLOCK);
  if (h.encode(block)) throw new ArchiveError("ARCHIVE_ENTRY_INVALID", `the tar header for ${quote(path)} does not fit ustar`);
  return block;
}

/** The zero bytes that pad `size` bytes of data to the block boundary. */
function zeroPad(size: number): Buffer {
  return Buffer.alloc(padded(size) - size);
}

/** gzip header bytes (RFC 1952 §2.3): FLG at 3, MTIME at 4–7, XFL at 8, OS at 9. */
const GZIP_FLG = 3;
const GZIP_MTIME = 4;
const GZIP_XFL = 8;
const GZIP_OS = 9;
/** XFL 2: "compressor used maximum compression" (level 9). */
const XFL_MAX_COMPRESSION = 2;
/** OS 3: Unix, whatever the build host (zlib writes its own platform's code). */
const OS_UNIX = 3;

/**
 * gzip at level 9 with a pinned header: no file name or comment (FLG 0),
 * MTIME 0, XFL 2 and OS 3 (Unix), so the bytes do not depend on the build
 * host or the time. (The deflate stream itself is Node's bundled zlib at
 * level 9; a different zlib could compress differently.)
 */
export function gzipDeterministic(tar: Uint8Array): Buffer {
  return pinGzipHeader(gzipSync(tar, { level: 9 }));
}

/**
 * Rewrites, in place, the header bytes a gzip writer takes from its host or
 * the clock: MTIME 0, XFL 2, OS 3. @internal exported for its test (Linux's
 * zlib already writes OS 3, so only a foreign header shows the rewrite).
 */
export function pinGzipHeader(gz: Buffer): Buffer {
  // FLG 0: no optional fields and no header CRC, so rewriting bytes 4-9 keeps the stream valid.
  if (gz[GZIP_FLG] !== 0) throw new Error("internal: unexpected gzip header flags");
  gz.fill(0, GZIP_MTIME, GZIP_MTIME + 4);
  gz[GZIP_XFL] = XFL_MAX_COMPRESSION;
  gz[GZIP_OS] = OS_UNIX;
  return gz;
}

/** {@link tarArchive} then {@link gzipDeterministic}; returns both, since OCI needs the tar's digest too. */
export function tarGz(entries: readonly TarEntry[]): { tar: Buffer; gz: Buffer } {
  const tar = tarArchive(entries);
  return { tar, gz: gzipDeterministic(tar) };
}
