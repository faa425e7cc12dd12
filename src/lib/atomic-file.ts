import { randomBytes } from "node:crypto";
import { open, rename, mkdir, unlink } from "node:fs/promises";
import { dirname, basename, join } from "node:path";

/**
 * Durably replaces `path` with `data`: temp file in the same directory → write →
 * fsync → rename → fsync(directory). After this resolves the new content
 * survives power loss; before it, readers see the old content or none, never a
 * torn file.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string, mode = 0o644): Promise<void> {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  await writeStreamAtomic(path, [bytes], mode);
}

/** fsync a directory so a rename or create inside it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Like writeFileAtomic, from a stream of chunks: the temp file is renamed into
 * place only after the iteration completes without error — so a source that
 * verifies its content as it goes (and throws at the end on a mismatch) never
 * leaves unverified bytes under `path`. Memory: one chunk.
 */
export async function writeStreamAtomic(path: string, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, mode = 0o644): Promise<number> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  const fh = await open(tmp, "wx", mode);
  let size = 0;
  try {
    for await (const chunk of chunks) {
      let off = 0;
      while (off < chunk.byteLength) off += (await fh.write(chunk, off, chunk.byteLength - off, size + off)).bytesWritten;
      size += chunk.byteLength;
    }
    await fh.sync();
  } catch (e) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fsyncDir(dir);
  return size;
}
