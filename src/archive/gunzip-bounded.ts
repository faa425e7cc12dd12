/** Step 1 of reading an archive: size and gzip. */
import { gunzip } from "node:zlib";
import { errnoCode, messageOf, printable } from "../lib/index.js";
import { ArchiveError } from "./errors.js";
import type { ArchiveLimits } from "./limits.js";

const GZIP_MAGIC = [0x1f, 0x8b, 0x08] as const;

/** Checks the compressed size and the gzip magic, before anything is allocated. */
export function checkContainer(input: Buffer, l: ArchiveLimits, what = "archive"): void {
  if (input.length > l.maxCompressedBytes) {
    throw new ArchiveError("ARCHIVE_TOO_LARGE", `the ${what} is ${input.length} bytes; the limit is ${l.maxCompressedBytes} bytes compressed`);
  }
  if (input.length < 18 || GZIP_MAGIC.some((b, i) => input[i] !== b)) {
    throw new ArchiveError("ARCHIVE_NOT_GZIP", `the ${what} is not gzip data (no gzip header with deflate compression)`);
  }
}

/** Inflates with a hard output cap: zlib stops a bomb at the cap and never allocates more. Trailing bytes are refused. */
export async function gunzipBounded(input: Buffer, l: ArchiveLimits, what = "archive"): Promise<Buffer> {
  let out: { buffer: Buffer; engine: { bytesWritten: number } };
  try {
    out = await new Promise((resolve, reject) => {
      gunzip(input, { maxOutputLength: l.maxDecompressedBytes, info: true }, (err, result) => {
        if (err) reject(err);
        else resolve(result as unknown as typeof out);
      });
    });
  } catch (e) {
    if (e instanceof RangeError || errnoCode(e) === "ERR_BUFFER_TOO_LARGE") {
      throw new ArchiveError("ARCHIVE_TOO_LARGE", `the ${what} expands to more than ${l.maxDecompressedBytes} bytes (a compression bomb?); decompression was stopped there`, { cause: e });
    }
    throw new ArchiveError("ARCHIVE_TAR_INVALID", `the gzip stream is corrupt or truncated: ${printable(messageOf(e))}`, { cause: e });
  }
  if (out.engine.bytesWritten !== input.length) {
    throw new ArchiveError("ARCHIVE_TAR_INVALID", `${input.length - out.engine.bytesWritten} bytes follow the end of the gzip stream`);
  }
  return out.buffer;
}
