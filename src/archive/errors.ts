import { AutonomyError, ExitCodes } from "../lib/index.js";

/** Every code an {@link ArchiveError} can carry; docs/errors.md lists each. */
export const ARCHIVE_ERROR_CODES = [
  "ARCHIVE_TOO_LARGE",
  "ARCHIVE_NOT_GZIP",
  "ARCHIVE_TAR_INVALID",
  "ARCHIVE_TOO_MANY_ENTRIES",
  "ARCHIVE_LINK_FORBIDDEN",
  "ARCHIVE_ENTRY_TYPE_FORBIDDEN",
  "ARCHIVE_PATH_UNSAFE",
  "ARCHIVE_DUPLICATE_ENTRY",
  "ARCHIVE_ENTRY_INVALID",
] as const;
export type ArchiveErrorCode = (typeof ARCHIVE_ERROR_CODES)[number];

const HINTS: Readonly<Record<ArchiveErrorCode, string>> = {
  ARCHIVE_TOO_LARGE: "the archive exceeds a size or count limit; rebuild it smaller or raise the limit where the caller allows it",
  ARCHIVE_NOT_GZIP: "the file is not a .tar.gz; check that the right file was given",
  ARCHIVE_TAR_INVALID: "the archive is corrupt, truncated or ambiguous; rebuild it with the project's tools",
  ARCHIVE_TOO_MANY_ENTRIES: "the archive has more entries than allowed; rebuild it with fewer files",
  ARCHIVE_LINK_FORBIDDEN: "archives may not contain hard or symbolic links; rebuild it with regular files only",
  ARCHIVE_ENTRY_TYPE_FORBIDDEN: "archives may contain regular files only (no devices, FIFOs or directories); rebuild it",
  ARCHIVE_PATH_UNSAFE: "an entry name could escape or confuse the extraction directory; rebuild the archive with plain names",
  ARCHIVE_DUPLICATE_ENTRY: "two entries share a name (or differ only in letter case); rebuild the archive with unique names",
  ARCHIVE_ENTRY_INVALID: "an entry given to the archive writer is not representable; check its name, mode and type",
};

/** Refusals of the archive reader (hostile or malformed input) and writer (an entry it cannot represent). Exit 1. */
export class ArchiveError extends AutonomyError<ArchiveErrorCode> {
  constructor(code: ArchiveErrorCode, message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, {
      hint: HINTS[code],
      exitCode: ExitCodes.failure,
      ...(opts.cause !== undefined ? { cause: opts.cause } : {}),
      ...(opts.details !== undefined ? { details: opts.details } : {}),
    });
  }
}
