/**
 * Files a user named on the command line (an artifact to push, a lock, a policy
 * bundle, a key to trust). A path that does not exist, cannot be read or is not a
 * regular file is the user's mistake, not a bug: a usage error (exit 2) naming
 * the file and what it was for, never an INTERNAL "this is a bug".
 */
import { open } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { UsageError, errnoCode, messageOf } from "./errors.js";
import { quote } from "./quote.js";

/** A named input file as read: its bytes and its mode bits (`stat.mode`). */
export interface InputFile {
  content: Buffer;
  mode: number;
}

/**
 * Reads `path` (bytes and mode from one open file, so both describe the same file).
 * `what` says what the file is for, e.g. "policy bundle", "file to push".
 *
 * ### Examples
 * ```ts
 * const { content, mode } = await readInput("agent.py", "file to push");
 * ```
 */
export async function readInput(path: string, what: string): Promise<InputFile> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, "r");
    const st = await fh.stat();
    if (!st.isFile()) throw unreadable(path, what, st.isDirectory() ? "it is a directory" : "it is not a regular file");
    return { content: await fh.readFile(), mode: st.mode };
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw unreadable(path, what, reasonOf(e));
  } finally {
    await fh?.close();
  }
}

/** {@link readInput}'s bytes only. */
export async function readInputFile(path: string, what: string): Promise<Buffer> {
  return (await readInput(path, what)).content;
}

function reasonOf(e: unknown): string {
  switch (errnoCode(e)) {
    case "ENOENT": return "ENOENT: no such file";
    case "EACCES": return "EACCES: permission denied";
    case "EISDIR": return "EISDIR: it is a directory";
    case "ENOTDIR": return "ENOTDIR: a part of the path is not a directory";
    case "ELOOP": return "ELOOP: too many symbolic links";
    default: return errnoCode(e) ?? messageOf(e);
  }
}

function unreadable(path: string, what: string, why: string): UsageError {
  return new UsageError(`cannot read ${what} ${quote(path, 300)}: ${why}`, `check the path to the ${what}: it must name a readable regular file`);
}
