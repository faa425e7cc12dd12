import { open, readFile, readdir, rename, unlink, stat, mkdir } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { errnoCode, fsyncDir, writeFileSynced } from "../../lib/index.js";

/**
 * The file operations the WAL performs, and nothing else. Production uses the
 * real file system; tests put a power-loss layer underneath that keeps what
 * was fsynced and drops what was not, at any instant they choose.
 */
export interface WalFile {
  /** Reads up to `length` bytes at `position`; returns the bytes read. */
  read(position: number, length: number): Promise<Uint8Array>;
  /** Writes all of `data` at `position`. */
  write(data: Uint8Array, position: number): Promise<void>;
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

/** A file opened read-only (the WAL reader: never creates, writes or truncates). */
export interface WalReadFile {
  /** Reads up to `length` bytes at `position` into `buf` at `offset`; returns how many (0 at the end of the file). */
  readInto(buf: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  size(): Promise<number>;
  /** The file itself (its inode), so that a name now naming another file is noticed. */
  identity(): Promise<string>;
  close(): Promise<void>;
}

export interface WalFs {
  /** Opens for read+write, creating the file if missing. */
  openFile(path: string): Promise<WalFile>;
  /** Opens read-only; rejects with an ENOENT error when the file does not exist. */
  openRead(path: string): Promise<WalReadFile>;
  /** Whole-file read; undefined when the file does not exist. */
  readFile(path: string): Promise<Uint8Array | undefined>;
  /** Creates/overwrites a file with `data` and fsyncs it (no rename). */
  writeFileSynced(path: string, data: Uint8Array): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  exists(path: string): Promise<boolean>;
  /** Size in bytes; undefined when the file does not exist. */
  fileSize(path: string): Promise<number | undefined>;
  /** Names in a directory (unsorted); empty when the directory does not exist. */
  list(dir: string): Promise<string[]>;
  fsyncDir(dir: string): Promise<void>;
  mkdirp(dir: string): Promise<void>;
}

class NodeWalFile implements WalFile {
  constructor(readonly fh: FileHandle) {}
  async read(position: number, length: number): Promise<Uint8Array> {
    const buf = Buffer.alloc(length);
    let off = 0;
    while (off < length) {
      const { bytesRead } = await this.fh.read(buf, off, length - off, position + off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    return buf.subarray(0, off);
  }
  async write(data: Uint8Array, position: number): Promise<void> {
    let off = 0;
    while (off < data.byteLength) {
      const { bytesWritten } = await this.fh.write(data, off, data.byteLength - off, position + off);
      off += bytesWritten;
    }
  }
  sync(): Promise<void> {
    return this.fh.sync();
  }
  truncate(length: number): Promise<void> {
    return this.fh.truncate(length);
  }
  async size(): Promise<number> {
    return (await this.fh.stat()).size;
  }
  close(): Promise<void> {
    return this.fh.close();
  }
}

/** The real file system. */
export const nodeWalFs: WalFs = {
  async openFile(path) {
    // Owner-only (0600): telemetry is the node's audit trail; other local users have no business reading it.
    return new NodeWalFile(await open(path, "a+", 0o600).then(async (h) => {
      // "a+" forces appends to EOF; reopen "r+" for positional writes, creating first.
      await h.close();
      return open(path, "r+");
    }));
  },
  async openRead(path) {
    const fh = await open(path, "r");
    return {
      readInto: async (buf, offset, length, position) => (await fh.read(buf, offset, length, position)).bytesRead,
      size: async () => (await fh.stat()).size,
      identity: async () => String((await fh.stat({ bigint: true })).ino),
      close: () => fh.close(),
    };
  },
  async readFile(path) {
    try {
      return await readFile(path);
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return undefined;
      throw e;
    }
  },
  writeFileSynced: (path, data) => writeFileSynced(path, data, 0o600),
  rename: (from, to) => rename(from, to),
  unlink: (path) => unlink(path),
  async exists(path) {
    try {
      await stat(path);
      return true;
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return false;
      throw e;
    }
  },
  async fileSize(path) {
    try {
      return (await stat(path)).size;
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return undefined;
      throw e;
    }
  },
  async list(dir) {
    try {
      return await readdir(dir);
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return [];
      throw e;
    }
  },
  fsyncDir: (dir) => fsyncDir(dir),
  mkdirp: async (dir) => {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  },
};
