/**
 * Replays a plshim log (plshim.c) into what a power cut at log position k
 * leaves on disk, in the model of test/helpers/power-loss-fs.ts:
 *
 *   - file content: a write is durable once an fsync/fdatasync of its inode
 *     (through any descriptor) follows it before k, or at once when it went
 *     through an O_SYNC/O_DSYNC descriptor (or msync(MS_SYNC)); a truncate
 *     likewise. Every other write or truncate before k is "pending": the crash
 *     keeps a seeded choice of them (none, all, a prefix in issue order with the
 *     last one torn at a sector boundary, each sector independently, or the
 *     size grown with zeros and no data). Surviving operations are applied in
 *     log order, so a later durable write over an earlier lost one still wins;
 *   - directory entries (create, mkdir, rename, unlink) are durable once an
 *     fsync of their directory follows; pending ones survive strictly (none),
 *     as an ordered prefix (a metadata journal) or as any subset. A file whose
 *     name did not survive is gone with its content;
 *   - 512-byte sectors are atomic: a torn write keeps whole sectors (aligned to
 *     the file offset), never part of one.
 */
import { posix } from "node:path";
import type { Rng } from "../../../src/lib/index.js";

export const REC = { CREATE: 1, WRITE: 2, TRUNC: 3, FSYNC: 4, RENAME: 5, UNLINK: 6, MKDIR: 7, UNSUPPORTED: 8 } as const;
const F_DURABLE = 1;
const F_DIR = 2;
const MAGIC = 0x504c5348;
const HEAD = 48;
const SECTOR = 512;

export interface LogRecord {
  index: number;
  type: number;
  durable: boolean;
  dir: boolean;
  path: string;
  path2: string;
  ino: bigint;
  offset: number;
  len: number;
  data: Buffer;
}

export function parseLog(buf: Buffer): LogRecord[] {
  const out: LogRecord[] = [];
  let at = 0;
  while (at + HEAD <= buf.length) {
    if (buf.readUInt32LE(at) !== MAGIC) throw new Error(`plshim log: bad magic at byte ${at}`);
    const type = buf.readUInt32LE(at + 4);
    const flags = buf.readUInt32LE(at + 8);
    const pl = buf.readUInt32LE(at + 12);
    const p2 = buf.readUInt32LE(at + 16);
    const ino = buf.readBigUInt64LE(at + 24);
    const offset = Number(buf.readBigUInt64LE(at + 32));
    const len = Number(buf.readBigUInt64LE(at + 40));
    let p = at + HEAD;
    const path = buf.toString("utf8", p, p + pl);
    p += pl;
    const path2 = buf.toString("utf8", p, p + p2);
    p += p2;
    const dlen = type === REC.WRITE ? len : 0;
    if (p + dlen > buf.length) throw new Error(`plshim log: record ${out.length} truncated`);
    out.push({ index: out.length, type, durable: (flags & F_DURABLE) !== 0, dir: (flags & F_DIR) !== 0, path, path2, ino, offset, len, data: buf.subarray(p, p + dlen) });
    at = p + dlen;
  }
  if (at !== buf.length) throw new Error(`plshim log: ${buf.length - at} trailing bytes`);
  return out;
}

export type ContentMode = "durable" | "all" | "prefix" | "sectors" | "zeros";
export type MetaMode = "strict" | "ordered" | "any";
export const CONTENT_MODES: readonly ContentMode[] = ["durable", "all", "prefix", "sectors", "zeros"];
export const META_MODES: readonly MetaMode[] = ["strict", "ordered", "any"];

type ContentOp = { kind: "write"; offset: number; data: Buffer; durable: boolean } | { kind: "trunc"; len: number; durable: boolean };
interface DirChange {
  dir: string;
  name: string;
  target: number | "dir" | undefined;
}

export interface CrashImage {
  /** Surviving files (path relative to the watched directory) and their bytes. */
  files: Map<string, Buffer>;
  dirs: string[];
  /** Lines written to `ackFile` before the cut. */
  acks: string[];
  /** Pending (not durable) content operations at the cut, and how many survived in full or part. */
  pendingWrites: number;
  survivedWrites: number;
  pendingDirOps: number;
  survivedDirOps: number;
}

/**
 * The state after a power cut just before record `k` (records 0..k-1 happened).
 * `ackFile`: a file whose writes are the workload's acknowledgements, kept out of the image.
 */
export function crashAt(records: readonly LogRecord[], k: number, rng: Rng, content: ContentMode, meta: MetaMode, ackFile = ".acks"): CrashImage {
  const files = new Map<number, ContentOp[]>();
  const inoToId = new Map<bigint, number>();
  let nextId = 1;
  const volatile = new Map<string, Map<string, number | "dir">>([["", new Map()]]);
  const durable = new Map<string, Map<string, number | "dir">>([["", new Map()]]);
  let pending: DirChange[][] = [];
  const acks: string[] = [];
  const split = (p: string): [string, string] => {
    const d = posix.dirname(p);
    return [d === "." ? "" : d, posix.basename(p)];
  };
  const idOf = (r: LogRecord): number => {
    const id = inoToId.get(r.ino);
    if (id === undefined) throw new Error(`plshim log: record ${r.index} (${r.path}) names an inode that was never created under the watched directory`);
    return id;
  };
  const dirOp = (changes: DirChange[]): void => {
    for (const c of changes) {
      const m = volatile.get(c.dir) ?? new Map<string, number | "dir">();
      volatile.set(c.dir, m);
      if (c.target === undefined) m.delete(c.name);
      else m.set(c.name, c.target);
    }
    pending.push(changes);
  };
  for (const r of records.slice(0, k)) {
    switch (r.type) {
      case REC.CREATE: {
        const id = nextId++;
        inoToId.set(r.ino, id);
        files.set(id, []);
        dirOp([{ dir: split(r.path)[0], name: split(r.path)[1], target: id }]);
        break;
      }
      case REC.MKDIR:
        volatile.set(r.path, new Map());
        durable.set(r.path, new Map());
        dirOp([{ dir: split(r.path)[0], name: split(r.path)[1], target: "dir" }]);
        break;
      case REC.UNLINK:
        dirOp([{ dir: split(r.path)[0], name: split(r.path)[1], target: undefined }]);
        break;
      case REC.RENAME: {
        const [fd, fn] = split(r.path);
        const target = volatile.get(fd)?.get(fn);
        dirOp([
          { dir: fd, name: fn, target: undefined },
          { dir: split(r.path2)[0], name: split(r.path2)[1], target },
        ]);
        break;
      }
      case REC.WRITE:
        if (r.path === ackFile) {
          acks.push(...r.data.toString("utf8").split("\n").filter((l) => l !== ""));
          break;
        }
        files.get(idOf(r))?.push({ kind: "write", offset: r.offset, data: r.data, durable: r.durable });
        break;
      case REC.TRUNC:
        if (r.path !== ackFile) files.get(idOf(r))?.push({ kind: "trunc", len: r.len, durable: false });
        break;
      case REC.FSYNC:
        if (r.dir) {
          durable.set(r.path, new Map(volatile.get(r.path) ?? []));
          pending = pending.map((ch) => ch.filter((c) => c.dir !== r.path)).filter((ch) => ch.length > 0);
        } else if (r.path !== ackFile) {
          for (const op of files.get(idOf(r)) ?? []) op.durable = true;
        }
        break;
      case REC.UNSUPPORTED:
        throw new Error(`plshim could not log an operation: ${r.path}`);
      default:
        throw new Error(`plshim log: unknown record type ${r.type}`);
    }
  }
  // Directory entries: the durable ones, plus the pending operations that survive.
  const entries = new Map([...durable].map(([d, m]) => [d, new Map(m)]));
  let surviving: DirChange[][] = [];
  if (meta === "ordered") surviving = pending.slice(0, Math.floor(rng() * (pending.length + 1)));
  if (meta === "any") surviving = pending.filter(() => rng() < 0.5);
  for (const ch of surviving) {
    for (const c of ch) {
      const m = entries.get(c.dir) ?? new Map<string, number | "dir">();
      entries.set(c.dir, m);
      if (c.target === undefined) m.delete(c.name);
      else m.set(c.name, c.target);
    }
  }
  const image: CrashImage = { files: new Map(), dirs: [], acks, pendingWrites: 0, survivedWrites: 0, pendingDirOps: pending.length, survivedDirOps: surviving.length };
  const walk = (dir: string): void => {
    for (const [name, target] of entries.get(dir) ?? []) {
      const p = dir === "" ? name : `${dir}/${name}`;
      if (p === ackFile) continue;
      if (target === "dir") {
        image.dirs.push(p);
        walk(p);
      } else image.files.set(p, fileContent(files.get(target) ?? [], rng, content, image));
    }
  };
  walk("");
  return image;
}

function fileContent(ops: readonly ContentOp[], rng: Rng, mode: ContentMode, stats: CrashImage): Buffer {
  let data = Buffer.alloc(0);
  const pendingIdx = ops.map((o, i) => (o.durable ? -1 : i)).filter((i) => i >= 0);
  stats.pendingWrites += pendingIdx.length;
  const tornAt = mode === "prefix" ? Math.floor(rng() * (pendingIdx.length + 1)) : -1;
  const resize = (len: number): void => {
    if (len <= data.length) data = Buffer.from(data.subarray(0, len));
    else data = Buffer.concat([data, Buffer.alloc(len - data.length)]);
  };
  const write = (offset: number, bytes: Buffer, keepSector: (s: number) => boolean): void => {
    const end = offset + bytes.length;
    if (end > data.length) resize(end);
    // Whole sectors of the file (aligned to file offsets) land or not.
    for (let s = Math.floor(offset / SECTOR) * SECTOR; s < end; s += SECTOR) {
      if (!keepSector(s)) continue;
      const lo = Math.max(s, offset);
      const hi = Math.min(s + SECTOR, end);
      bytes.copy(data, lo, lo - offset, hi - offset);
    }
  };
  let seen = 0;
  for (const op of ops) {
    let survives: "all" | "none" | "torn" | "sectors" | "size" = "all";
    if (!op.durable) {
      const n = seen++;
      if (mode === "durable") survives = "none";
      else if (mode === "prefix") survives = n < tornAt ? "all" : n === tornAt ? "torn" : "none";
      else if (mode === "sectors") survives = rng() < 0.5 ? "sectors" : rng() < 0.5 ? "all" : "none";
      else if (mode === "zeros") survives = rng() < 0.5 ? "size" : "none";
      if (survives !== "none") stats.survivedWrites++;
    }
    if (op.kind === "trunc") {
      if (survives !== "none") resize(op.len);
      continue;
    }
    const end = op.offset + op.data.length;
    if (survives === "all") write(op.offset, op.data, () => true);
    else if (survives === "size") {
      if (end > data.length) resize(end);
    } else if (survives === "torn") {
      const cut = op.offset + Math.floor(rng() * (op.data.length + 1));
      write(op.offset, op.data, (s) => s + SECTOR <= cut);
    } else if (survives === "sectors") write(op.offset, op.data, () => rng() < 0.5);
  }
  return data;
}
