/** The builder's output format: a deterministic ustar stream, gzip'd with fixed header bytes. */
import { gzipSync } from "node:zlib";
import { Header, Pax } from "tar";
import { quote } from "./quote.js";
import type { SourceFile } from "./sources.js";
import { BLOCK, padded } from "./tar-header.js";

/** Longest name stored in the ustar name field alone; longer names get a pax `path` record. */
const USTAR_NAME_MAX = 99;
const EPOCH = new Date(0);

/** A POSIX ustar stream of regular files in the given order, every field fixed except name, size and content. */
export function tarArchive(files: readonly SourceFile[]): Buffer {
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

/** The zero bytes that pad `size` bytes of data to the block boundary. */
function zeroPad(size: number): Buffer {
  return Buffer.alloc(padded(size) - size);
}

/** gzip header byte 9: the operating system; fixed so the bytes do not depend on the build host. */
const GZIP_OS_UNIX = 3;

/** gzip at level 9 with no file name, no mtime (Node's zlib writes 0) and a fixed OS byte. */
export function gzipDeterministic(tar: Buffer): Buffer {
  const gz = gzipSync(tar, { level: 9 });
  // FLG (byte 3) is 0: no header CRC covers byte 9, so fixing it keeps the stream valid.
  if (gz[3] !== 0) throw new Error("internal: unexpected gzip header flags");
  gz[9] = GZIP_OS_UNIX;
  return gz;
}
