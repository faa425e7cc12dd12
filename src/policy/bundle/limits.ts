/** Size and count limits of a bundle, shared by the reader and the builder. */
import type { ArchiveLimits } from "../../archive/index.js";

const MiB = 1024 * 1024;

/** Size and count limits applied while reading (and, by the builder, while writing) a bundle: the archive reader's limits. */
export type BundleLimits = ArchiveLimits;

/** The limits {@link readBundle} applies unless told otherwise. */
/**
 * Defaults: 16 MiB compressed, 64 MiB after gunzip, 4 MiB per file, 1,000 entries
 * (`manifest.json` included), 64 KiB per pax or GNU long-name header.
 */
export const DEFAULT_BUNDLE_LIMITS: Readonly<BundleLimits> = Object.freeze({
  maxCompressedBytes: 16 * MiB,
  maxDecompressedBytes: 64 * MiB,
  maxEntryBytes: 4 * MiB,
  maxEntries: 1000,
  maxExtendedHeaderBytes: 64 * 1024,
});
