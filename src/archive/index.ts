export { tarArchive, gzipDeterministic, tarGz } from "./tar-write.js";
export type { TarEntry, TarFileEntry, TarDirectoryEntry } from "./tar-write.js";
export { readTarGz } from "./read.js";
export type { ReadTarGzOptions } from "./read.js";
export type { RawEntry as ArchiveEntry } from "./tar-walk.js";
export type { ArchiveLimits, ArchiveReadContext } from "./limits.js";
export { entryNameProblem } from "./limits.js";
export { ArchiveError, ARCHIVE_ERROR_CODES } from "./errors.js";
export type { ArchiveErrorCode } from "./errors.js";
