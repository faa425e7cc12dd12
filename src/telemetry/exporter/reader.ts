/**
 * Read-only, streaming access to a WAL's committed entries, safe next to a
 * live writer in another process and without its lock: the safe point is read
 * first, and every frame up to it was fsynced before the safe point named it
 * (seed 001 §3.6), so the range base+1..safe_seq is stable while the writer
 * appends past it. Nothing is opened for writing and nothing is truncated;
 * recovery is the writer's business.
 *
 * Segments (docs/wal.md "Bounded disk: segments"): the committed range lies in
 * the sealed segments `telemetry.wal.<first>-<last>`, then the active
 * `telemetry.wal`. The writer renames the active file when it seals it and
 * unlinks sealed segments when it reclaims them, so what a directory listing
 * said can be stale by the time a file is opened. A stale view shows up as a
 * missing file or an active file that does not start at the expected seq; the
 * reader then lists again (a few times) before it calls anything lost.
 *
 * Memory: one read buffer (256 KiB, or one frame if a frame is larger) and,
 * for at most MAX_INDEXED_FILES files, a sparse index of frame offsets (one
 * number per 1024 frames), so a scan from any seq skips at most 1023 frame headers.
 */
import { open, readFile } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { errnoCode } from "../../lib/index.js";
import { FRAME_HEADER_BYTES, MAX_FRAME_BYTES, WalFailHard, decodePayload, decodeSafeSeq, nodeWalFs, readGeneration, readSegmentLayout, walPaths } from "../wal/index.js";
import type { SegmentLayout, Wal, WalEntry } from "../wal/index.js";

export interface ScannedEntry extends WalEntry {
  /** Payload size in bytes. */
  bytes: number;
}

/** What the exporter reads: the committed range of one WAL. */
export interface WalSource {
  /** The WAL directory (telemetry.pos and the dead-letter file live there). */
  readonly dir: string;
  /** Highest committed seq (0: nothing committed yet). */
  committed(): Promise<number>;
  /** The WAL generation (docs/wal.md "Generations"): telemetry.pos and event ids carry it. */
  generation(): Promise<string>;
  /**
   * Committed entries `from..to` in seq order (`to` ≤ a value committed()
   * returned), in pages of at most a few hundred entries. Entries whose seq
   * `skip` accepts are neither decoded nor yielded. Entries at or below the
   * WAL's reclaimed base no longer exist and are silently left out.
   */
  scan(from: number, to: number, opts?: ScanOptions): AsyncGenerator<ScannedEntry[]>;
}

export interface ScanOptions {
  skip?: (seq: number) => boolean;
}

/** Most entries per page. */
const PAGE = 512;
/** Files whose offset index is kept (oldest forgotten first): a scan touches few files, and each index costs memory. */
const MAX_INDEXED_FILES = 8;
/** Fresh looks at the directory before a stale view is taken for lost data; the writer's seal is a few syscalls. */
const RETRIES = 5;
const ACTIVE = "telemetry.wal";

export interface WalFileReaderOptions {
  chunkBytes?: number;
  /** Frames between two remembered offsets. */
  stride?: number;
  /** Test hook: runs after each directory listing, before the file it chose is opened (to stage a writer's race). */
  beforeOpen?: (name: string) => Promise<void> | void;
}

/** One file of the logical WAL and the seqs it must hold; `last` is Infinity for the active file (it grows). */
interface Part {
  name: string;
  path: string;
  first: number;
  last: number;
  sealed: boolean;
}

/** Remembered offsets in one file (by name and inode): checkpoints[k] = byte offset of seq first + k·stride. */
interface FileIndex {
  first: number;
  checkpoints: number[];
}

/** State of one scan, carried across files. */
interface ScanState {
  next: number;
  readonly to: number;
  /** Seqs ≤ this were accepted by a legacy upgrade with gaps (OBS-4): there each frame's own seq is read, never assumed. */
  readonly legacy: number;
  readonly skip: ((seq: number) => boolean) | undefined;
  page: ScannedEntry[];
  readonly buf: ReadBuffer;
}

/** The directory changed under the reader (a seal or a reclamation): look again; `verdict` is what it means if it keeps happening. */
class StaleView extends Error {
  constructor(readonly verdict: WalFailHard) {
    super(verdict.message);
  }
}

/** The scan's one read buffer, filled from the frame being read; it grows only for a frame larger than the chunk. */
class ReadBuffer {
  #buf: Buffer;
  #start = 0;
  #len = 0;
  #fh: FileHandle | undefined;

  constructor(readonly chunk: number) {
    this.#buf = Buffer.alloc(chunk);
  }

  attach(fh: FileHandle): void {
    this.#fh = fh;
    this.#len = 0;
  }

  /** Makes bytes off..off+n readable; false when the file ends first. */
  async ensure(off: number, n: number): Promise<boolean> {
    if (off >= this.#start && off + n <= this.#start + this.#len) return true;
    // Entries handed out are decoded copies, so the buffer can be refilled in place.
    if (this.#buf.length < n) this.#buf = Buffer.alloc(n);
    else if (this.#buf.length > this.chunk && n <= this.chunk) this.#buf = Buffer.alloc(this.chunk);
    let got = 0;
    while (this.#fh && got < this.#buf.length) {
      const { bytesRead } = await this.#fh.read(this.#buf, got, this.#buf.length - got, off + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    this.#start = off;
    this.#len = got;
    return got >= n;
  }

  u32(off: number): number {
    return this.#buf.readUInt32BE(off - this.#start);
  }

  bytes(off: number, n: number): Buffer {
    return this.#buf.subarray(off - this.#start, off - this.#start + n);
  }
}

export class WalFileReader implements WalSource {
  readonly dir: string;
  readonly #chunk: number;
  readonly #stride: number;
  readonly #beforeOpen: WalFileReaderOptions["beforeOpen"];
  /** Keyed by file name and inode, least recently used first. */
  readonly #indexes = new Map<string, FileIndex>();

  constructor(dir: string, o: WalFileReaderOptions = {}) {
    this.dir = dir;
    this.#chunk = o.chunkBytes ?? 256 * 1024;
    this.#stride = o.stride ?? 1024;
    this.#beforeOpen = o.beforeOpen;
  }

  /** The generation file beside the directory; the legacy generation when there is none. */
  async generation(): Promise<string> {
    return (await readGeneration(nodeWalFs, this.dir)).id;
  }

  /** The safe point (telemetry.safe_seq); 0 while it does not exist (first run: nothing committed). */
  async committed(): Promise<number> {
    let raw: Uint8Array;
    try {
      raw = await readFile(walPaths(this.dir).safeSeq);
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return 0;
      throw e;
    }
    const seq = decodeSafeSeq(raw);
    if (seq === undefined) throw new WalFailHard("SAFESEQ_CORRUPT", this.dir, `telemetry.safe_seq is ${raw.byteLength} bytes, not 8`, { length: raw.byteLength });
    return seq;
  }

  async *scan(from: number, to: number, opts: ScanOptions = {}): AsyncGenerator<ScannedEntry[]> {
    const legacy = (await readGeneration(nodeWalFs, this.dir)).legacyThrough ?? 0;
    const st: ScanState = { next: Math.max(1, from), to, legacy, skip: opts.skip, page: [], buf: new ReadBuffer(this.#chunk) };
    let misses = 0;
    while (st.next <= to) {
      const before = st.next;
      try {
        const part = await this.#locate(st);
        if (!part) break;
        yield* this.#readPart(part, st);
        misses = 0;
      } catch (e) {
        if (!(e instanceof StaleView)) throw e;
        // Only a view that stays stale without any progress means data is gone.
        misses = st.next > before ? 1 : misses + 1;
        if (misses > RETRIES) throw e.verdict;
        await sleep(misses * 5);
      }
    }
    if (st.page.length > 0) yield st.page;
  }

  /** Lists the directory and picks the file holding `st.next`; undefined when everything left was reclaimed. */
  async #locate(st: ScanState): Promise<Part | undefined> {
    const layout = await this.#layout();
    // Seqs ≤ base were reclaimed, which the writer does only at or below the exporter's confirmed position.
    st.next = Math.max(st.next, layout.base + 1);
    if (st.next > st.to) return undefined;
    const next = st.next;
    const seg = layout.retained.find((s) => s.first <= next && next <= s.last);
    const part = seg
      ? { name: seg.name, path: seg.path, first: seg.first, last: seg.last, sealed: true }
      : { name: ACTIVE, path: walPaths(this.dir).wal, first: layout.activeFirst, last: Number.POSITIVE_INFINITY, sealed: false };
    await this.#beforeOpen?.(part.name);
    return part;
  }

  /** base and the sealed chain; a listing taken mid-seal or mid-reclaim can look broken, so its verdicts are retried. */
  async #layout(): Promise<SegmentLayout> {
    try {
      return await readSegmentLayout(nodeWalFs, this.dir);
    } catch (e) {
      if (e instanceof WalFailHard) throw new StaleView(e);
      throw e;
    }
  }

  /** Streams `st.next..min(st.to, part.last)` from one file into `st.page`, yielding each full page. */
  async *#readPart(part: Part, st: ScanState): AsyncGenerator<ScannedEntry[]> {
    const fh = await this.#open(part, st);
    let key: string | undefined;
    try {
      st.buf.attach(fh);
      await this.#checkFirst(part, st);
      key = `${part.name}:${(await fh.stat({ bigint: true })).ino}`;
      const index = this.#index(key, part.first);
      const end = Math.min(st.to, part.last);
      let { seq, off } = this.#start(index, st.next);
      for (; seq <= end; seq++) {
        if (st.page.length >= PAGE) {
          yield st.page;
          st.page = [];
        }
        const len = await this.#frameLength(part, st, seq, off);
        let entry: WalEntry | undefined;
        if (seq <= st.legacy) {
          // OBS-4: a legacy frame may carry a higher seq than the one expected (an accepted gap).
          entry = this.#decode(part, st.buf, seq, off, len, st.legacy);
          if (entry.seq > end) {
            st.next = Math.max(st.next, end + 1); // the seqs up to `end` do not exist
            break;
          }
          seq = entry.seq;
        }
        this.#note(index, seq, off);
        if (seq >= st.next) {
          if (!st.skip?.(seq)) st.page.push({ ...(entry ?? this.#decode(part, st.buf, seq, off, len, st.legacy)), bytes: len });
          st.next = seq + 1;
        }
        off += FRAME_HEADER_BYTES + len;
      }
      if (part.sealed && end === part.last) await this.#checkEnd(part, fh, off);
    } catch (e) {
      // Offsets remembered for a file that turned out bad must not steer the next scan.
      if (key !== undefined) this.#indexes.delete(key);
      throw e;
    } finally {
      await fh.close();
    }
  }

  async #open(part: Part, st: ScanState): Promise<FileHandle> {
    try {
      return await open(part.path, "r");
    } catch (e) {
      if (errnoCode(e) !== "ENOENT") throw e;
      // A sealed segment vanishes when it is reclaimed; the active file for a moment while it is sealed.
      const what = part.sealed ? `${part.name} is missing and telemetry.wal.base does not cover seq ${st.next}` : `telemetry.wal is missing but the safe point names seq ${st.to}`;
      throw new StaleView(new WalFailHard("SAFESEQ_NOT_FOUND", this.dir, what, { seq: st.next, safe_seq: st.to, file: part.name }));
    }
  }

  /**
   * The file must start with the seq its place in the chain says. For the
   * active file a mismatch (or no complete first frame) usually means the
   * writer sealed it after the listing and this is its successor: look again.
   */
  async #checkFirst(part: Part, st: ScanState): Promise<void> {
    try {
      this.#decode(part, st.buf, part.first, 0, await this.#frameLength(part, st, part.first, 0), st.legacy);
    } catch (e) {
      if (part.sealed || !(e instanceof WalFailHard)) throw e;
      throw new StaleView(e);
    }
  }

  /** Length of the frame `seq` at `off`, with its whole payload buffered; throws the verdict for a short file or a torn length. */
  async #frameLength(part: Part, st: ScanState, seq: number, off: number): Promise<number> {
    if (!(await st.buf.ensure(off, FRAME_HEADER_BYTES))) throw this.#short(part, st, seq);
    const len = st.buf.u32(off);
    if (len > MAX_FRAME_BYTES) throw new WalFailHard("WAL_CORRUPT_INVALID_JSON", this.dir, `${part.name}: committed frame ${seq} at byte ${off} has an impossible length ${len}`, { seq, offset: off, file: part.name });
    if (!(await st.buf.ensure(off, FRAME_HEADER_BYTES + len))) throw this.#short(part, st, seq);
    return len;
  }

  /** The frame at `off`, which must carry `seq` (or, up to `legacy`, a higher seq: an accepted legacy gap). */
  #decode(part: Part, buf: ReadBuffer, seq: number, off: number, len: number, legacy: number): WalEntry {
    const entry = decodePayload(buf.bytes(off + FRAME_HEADER_BYTES, len));
    if (!entry) throw new WalFailHard("WAL_CORRUPT_INVALID_JSON", this.dir, `${part.name}: committed frame ${seq} at byte ${off} is not a valid entry`, { seq, offset: off, file: part.name });
    if (entry.seq === seq || (entry.seq > seq && entry.seq <= legacy)) return entry;
    if (part.sealed && off === 0) throw new WalFailHard("SEGMENT_INVALID", this.dir, `${part.name} starts with seq ${entry.seq}, not ${seq}`, { seq: entry.seq, expected: seq, segment: part.name });
    throw new WalFailHard("SEQ_GAP", this.dir, `${part.name}: frame at byte ${off} has seq ${entry.seq}, expected ${seq}`, { seq: entry.seq, expected: seq, offset: off, file: part.name });
  }

  /** The file ends before a frame the chain or the safe point says exists: committed data is gone. */
  #short(part: Part, st: ScanState, seq: number): WalFailHard {
    if (part.sealed) return new WalFailHard("SEGMENT_INVALID", this.dir, `${part.name} is truncated: it ends before frame ${seq}, its name says it holds ${part.first}..${part.last}`, { seq, segment: part.name });
    return new WalFailHard("SAFESEQ_NOT_FOUND", this.dir, `telemetry.wal ends before frame ${seq}; the safe point names seq ${st.to}`, { seq, safe_seq: st.to });
  }

  /** A sealed segment holds exactly its named frames: bytes after the last one mean it is not the file its name says. */
  async #checkEnd(part: Part, fh: FileHandle, off: number): Promise<void> {
    const size = (await fh.stat()).size;
    if (size !== off) throw new WalFailHard("SEGMENT_INVALID", this.dir, `${part.name} has ${size - off} bytes after its last frame ${part.last}`, { segment: part.name, bytes: size, end: off });
  }

  /** The index for one file, most recently used last; a file whose first seq changed (reused inode) starts over. */
  #index(key: string, first: number): FileIndex {
    let index = this.#indexes.get(key);
    this.#indexes.delete(key);
    if (index?.first !== first) index = { first, checkpoints: [] };
    this.#indexes.set(key, index);
    for (const old of this.#indexes.keys()) {
      if (this.#indexes.size <= MAX_INDEXED_FILES) break;
      this.#indexes.delete(old);
    }
    return index;
  }

  /** The nearest remembered frame at or before `next`. */
  #start(index: FileIndex, next: number): { seq: number; off: number } {
    const k = Math.min(Math.floor((next - index.first) / this.#stride), index.checkpoints.length - 1);
    return k >= 0 ? { seq: index.first + k * this.#stride, off: index.checkpoints[k] ?? 0 } : { seq: index.first, off: 0 };
  }

  #note(index: FileIndex, seq: number, off: number): void {
    const rel = seq - index.first;
    if (rel % this.#stride === 0 && rel / this.#stride === index.checkpoints.length) index.checkpoints.push(off);
  }
}

/** An open, in-process Wal as a source (the writer's own offsets; same committed range). */
export function walSource(wal: Wal, pageSize = 256): WalSource {
  return {
    dir: wal.dir,
    committed: () => Promise.resolve(wal.lastSeq),
    generation: () => Promise.resolve(wal.generation),
    async *scan(from: number, to: number, opts: ScanOptions = {}): AsyncGenerator<ScannedEntry[]> {
      let next = Math.max(1, from);
      for (;;) {
        // readFrom starts at base + 1 by itself, but the page limit must count from there too, or
        // a page would run past `to`. Read base in the same tick as the call: reclaim moves it.
        next = Math.max(next, wal.base + 1);
        if (next > to) return;
        const page = await wal.readFrom(next, Math.min(pageSize, to - next + 1));
        if (page.length === 0) return;
        const out = page.filter((e) => !opts.skip?.(e.seq)).map((e) => ({ ...e, bytes: Buffer.byteLength(JSON.stringify(e)) }));
        if (out.length > 0) yield out;
        next = (page[page.length - 1]?.seq ?? to) + 1;
      }
    },
  };
}
