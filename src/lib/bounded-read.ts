import { open } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { errnoCode } from "./errors.js";

/**
 * Reads a regular file of at most `max` bytes, never more than `max + 1`:
 * opened once, checked on the descriptor (fstat: a FIFO, a device such as
 * /dev/zero behind a symlink, a directory are refused without being read),
 * then read to EOF with the bound (/proc files report size 0, so the size is
 * not trusted). `fail(problem)` builds the caller's typed error
 * ({@link describeBoundedReadProblem} words it).
 *
 * The open blocks on a FIFO until a writer appears, as any reader would; the
 * FIFO is then refused unread.
 */
export type BoundedReadProblem = { kind: "unreadable"; errno: string } | { kind: "not_regular"; what: string } | { kind: "too_big"; max: number };

/** "cannot read it: ENOENT", "it is a directory", "it is over 65536 bytes". */
export function describeBoundedReadProblem(p: BoundedReadProblem): string {
  return p.kind === "unreadable" ? `cannot read it: ${p.errno}` : p.kind === "not_regular" ? `it is ${p.what}` : `it is over ${p.max} bytes`;
}

export async function readRegularFileBounded(path: string, max: number, fail: (problem: BoundedReadProblem, cause?: unknown) => Error): Promise<Buffer> {
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch (e) {
    throw fail({ kind: "unreadable", errno: errnoCode(e) ?? String(e) }, e);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw fail({ kind: "not_regular", what: st.isDirectory() ? "a directory" : "not a regular file (a FIFO, a device or a socket)" });
    const buf = Buffer.alloc(max + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, null).catch((e: unknown) => {
        throw fail({ kind: "unreadable", errno: errnoCode(e) ?? String(e) }, e);
      });
      if (bytesRead === 0) return buf.subarray(0, n);
      n += bytesRead;
      if (n > max) throw fail({ kind: "too_big", max });
    }
  } finally {
    await fh.close();
  }
}
