/** Step 3 of reading an archive: a second opinion from the `tar` package. */
import { Parser } from "tar";
import type { ReadEntry } from "tar";
import { messageOf, printable, quote } from "../lib/index.js";
import { ArchiveError } from "./errors.js";
import type { ArchiveLimits } from "./limits.js";
import type { RawEntry } from "./tar-walk.js";

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
export function crossCheckWithTarParser(tar: Buffer, entries: readonly RawEntry[], l: ArchiveLimits): void {
  const parsed: ParsedEntry[] = [];
  let failure: string | undefined;
  let ended = false;
  const parser = new Parser({ strict: true, brotli: false, zstd: false, maxMetaEntrySize: l.maxExtendedHeaderBytes });
  parser.on("error", (e: unknown) => {
    failure ??= messageOf(e);
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
    failure ??= messageOf(e);
  }
  failure ??= disagreement(parsed, entries, ended);
  if (failure !== undefined) {
    throw new ArchiveError("ARCHIVE_TAR_INVALID", `the tar archive is malformed: the tar parser disagrees with the header walk (${printable(failure)})`);
  }
}

/** How what the parser saw differs from what the walk found, or undefined when they agree. */
function disagreement(parsed: readonly ParsedEntry[], entries: readonly RawEntry[], ended: boolean): string | undefined {
  if (!ended) return "it did not finish";
  if (parsed.length !== entries.length) return `it found ${parsed.length} entries, not ${entries.length}`;
  for (let i = 0; i < entries.length; i++) {
    const want = entries[i]!;
    const got = parsed[i]!;
    if (got.path !== want.name || got.type !== "File" || got.size !== want.data.length || !Buffer.concat(got.chunks).equals(want.data)) {
      return `it reads entry ${want.index} ${quote(want.name)} as ${got.type} ${quote(got.path)} of ${got.size} bytes`;
    }
  }
  return undefined;
}
