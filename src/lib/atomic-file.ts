import { randomBytes } from "node:crypto";
import { open, rename, mkdir, unlink } from "node:fs/promises";
import { dirname, basename, join } from "node:path";

/**
 * Durably replaces `path` with `data`: temp file in the same directory → write →
 * fsync → rename → fsync(directory). After this resolves the new content
 * survives power loss; before it, readers see the old content or none, never a
 * torn file.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string, mode = 0o644, owner?: FileOwner): Promise<void> {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  await writeStreamAtomic(path, [bytes], mode, owner);
}

/**
 * The owner a replacement must keep: a file created by root (sudo) would
 * otherwise become root's, and the service account that reads it locked out.
 * With an owner, the mode is also set exactly (not filtered by the umask).
 */
export interface FileOwner {
  uid: number;
  gid: number;
}

/**
 * The three operations a durable replace performs. The WAL passes its own
 * file system (WalFs) so that its power-loss model sees each step; everyone
 * else gets the real one.
 */
export interface ReplaceFs {
  /** Creates or truncates `path`, writes `data`, fsyncs the file. */
  writeFileSynced(path: string, data: Uint8Array): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  fsyncDir(dir: string): Promise<void>;
}

/** Creates or truncates `path`, writes `data` and fsyncs it (no rename: one step of a durable replace). */
export async function writeFileSynced(path: string, data: Uint8Array, mode = 0o644): Promise<void> {
  const fh = await open(path, "w", mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

const nodeReplaceFs: ReplaceFs = { writeFileSynced: (p, d) => writeFileSynced(p, d), rename, fsyncDir };

/**
 * Durably replaces `path` with `data` through the FIXED temp name `tmp` (same
 * directory): write `tmp` → fsync → rename over `path` → fsync(directory) —
 * seed 001 §3.5's safe-point update, and the only order that leaves the old or
 * the new content after a power cut, never a torn file.
 *
 * Use it (not writeFileAtomic, whose temp name is random) for a single
 * writer's small state files whose crash leftover must have a known name:
 * recovery recognises it (WS-3), the next write reuses it, and the directory
 * never collects stray temps.
 */
export async function replaceFileDurably(path: string, tmp: string, data: Uint8Array, fs: ReplaceFs = nodeReplaceFs): Promise<void> {
  await fs.writeFileSynced(tmp, data);
  await fs.rename(tmp, path);
  await fs.fsyncDir(dirname(path));
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
export async function writeStreamAtomic(path: string, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, mode = 0o644, owner?: FileOwner): Promise<number> {
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
    if (owner !== undefined) {
      // On the temp file, before it is published: the file never appears with the wrong owner. chown may clear mode bits: chmod after.
      await fh.chown(owner.uid, owner.gid);
      await fh.chmod(mode);
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
