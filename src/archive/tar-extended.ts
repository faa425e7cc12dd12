/** Extended headers (pax and GNU long names) as the strict walk reads them. */
import { ArchiveError } from "./errors.js";
import { quote } from "../lib/index.js";
import { Flag, cString, isZero } from "./tar-header.js";

/**
 * pax keys refused. `type` is no POSIX key, but the tar package honours it and
 * would read the entry as another type than GNU tar does; a global header may not
 * rename, resize or retype the entries after it.
 */
const PAX_FORBIDDEN_KEYS = new Set(["type"]);
const PAX_GLOBAL_FORBIDDEN_KEYS = new Set(["path", "linkpath", "size", "type"]);

/** What pending extended headers say about the next file entry. */
export interface Pending {
  path?: string;
  size?: number;
  linkpath?: boolean;
  /** A GNU long name with bytes after its NUL. */
  hidden?: boolean;
}

/** True for the type flags of the extended headers {@link applyMeta} folds in. */
export function isExtendedHeader(typeflag: string): boolean {
  return typeflag === Flag.Pax || typeflag === Flag.PaxGlobal || typeflag === Flag.GnuLongName || typeflag === Flag.GnuLongLink;
}

/** Folds a pax / GNU long-name header into what applies to the next file entry. */
export function applyMeta(typeflag: string, body: Buffer, pending: Pending, where: string): Pending {
  if (typeflag === Flag.GnuLongName) {
    const nul = body.indexOf(0);
    return { ...pending, path: cString(body), hidden: nul >= 0 && !isZero(body.subarray(nul)) };
  }
  if (typeflag === Flag.GnuLongLink) return { ...pending, linkpath: true };
  const records = parsePaxRecords(body, where);
  const global = typeflag === Flag.PaxGlobal;
  const next: Pending = { ...pending };
  for (const [key, value] of records) {
    if ((global ? PAX_GLOBAL_FORBIDDEN_KEYS : PAX_FORBIDDEN_KEYS).has(key)) {
      throw new ArchiveError("ARCHIVE_TAR_INVALID", `${where}: a ${global ? "global " : ""}pax header may not set ${quote(key)}`);
    }
    if (global) continue;
    if (key === "path") next.path = value;
    else if (key === "linkpath") next.linkpath = true;
    else if (key === "size") {
      if (!/^\d{1,15}$/.test(value)) throw new ArchiveError("ARCHIVE_TAR_INVALID", `${where}: pax size ${quote(value)} is not a decimal number`);
      next.size = Number(value);
    }
  }
  return next;
}

/**
 * Strict pax records: `<decimal length> <key>=<value>\n`, where the length counts
 * the whole record; the body must be exactly a sequence of such records. (Values
 * are taken as bytes, latin1-decoded: names must be ASCII anyway.)
 */
function parsePaxRecords(body: Buffer, where: string): [string, string][] {
  const out: [string, string][] = [];
  let pos = 0;
  while (pos < body.length) {
    const space = body.indexOf(0x20, pos);
    const lenText = space < 0 ? "" : body.toString("latin1", pos, space);
    if (!/^[1-9]\d{0,8}$/.test(lenText)) throw new ArchiveError("ARCHIVE_TAR_INVALID", `${where}: malformed pax record length at byte ${pos} of the extended header`);
    const end = pos + Number(lenText);
    if (end > body.length || body[end - 1] !== 0x0a) throw new ArchiveError("ARCHIVE_TAR_INVALID", `${where}: a pax record overruns the extended header or lacks its newline`);
    const record = body.toString("latin1", space + 1, end - 1);
    const eq = record.indexOf("=");
    if (eq <= 0) throw new ArchiveError("ARCHIVE_TAR_INVALID", `${where}: a pax record has no key`);
    out.push([record.slice(0, eq), record.slice(eq + 1)]);
    pos = end;
  }
  return out;
}
