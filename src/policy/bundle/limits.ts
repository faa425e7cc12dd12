/** Size and count limits of a bundle, shared by the reader and the builder. */

const MiB = 1024 * 1024;

/** Size and count limits applied while reading (and, by the builder, while writing) a bundle. */
export interface BundleLimits {
  /** The `.tar.gz` itself. Default 16 MiB. */
  maxCompressedBytes: number;
  /** The tar stream after gunzip; decompression stops at this size. Default 64 MiB. */
  maxDecompressedBytes: number;
  /** Any one file in the archive. Default 4 MiB. */
  maxEntryBytes: number;
  /** Entries in the archive, `manifest.json` included (pax extended headers not counted). Default 1,000. */
  maxEntries: number;
  /** The body of one pax or GNU long-name header. Default 64 KiB. */
  maxExtendedHeaderBytes: number;
}

/** The limits {@link readBundle} applies unless told otherwise. */
export const DEFAULT_BUNDLE_LIMITS: Readonly<BundleLimits> = Object.freeze({
  maxCompressedBytes: 16 * MiB,
  maxDecompressedBytes: 64 * MiB,
  maxEntryBytes: 4 * MiB,
  maxEntries: 1000,
  maxExtendedHeaderBytes: 64 * 1024,
});
