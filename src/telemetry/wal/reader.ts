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
 *
 * This is the WAL's one read-only reader: the exporter streams committed
 * entries with `scan`, `autonomy wal read` prints them, and `inspect` (behind
 * `autonomy wal inspect|verify` and readCommitted) walks every retained file
 * chunk by chunk through the same file system, buffer and stale-view retries.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { errnoCode } from "../../lib/index.js";
import { FRAME_HEADER_BYTES, MAX_FRAME_BYTES, decodePayload, decodeSafeSeq } from "./codec.js";
import type { WalEntry } from "./codec.js";
import { WalFailHard } from "./errors.js";
import { nodeWalFs } from "./fs.js";
import type { WalFs, WalReadFile } from "./fs.js";
import { legacyRangeOf, readGeneration } from "./generation.js";
import type { LegacyGap, LegacyRange } from "./generation.js";
import { walPaths } from "./paths.js";
import { readSegmentLayout } from "./segments.js";
import type { Segment, SegmentLayout } from "./segments.js";
import { FrameWalker, inspectWalked } from "./verify.js";
import type { ImageFile, Violation, WalInspection, WalkedFile, WalkedImage } from "./verify.js";

export interface ScannedEntry extends WalEntry {
  /** Payload size in bytes. */
  bytes: number;
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
  /** The file system to read through (default: the real one). */
  fs?: WalFs;
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
  /** The gaps a legacy upgrade recorded (OBS-4): up to `legacy.through` each frame's own seq is read, never assumed, and only those gaps pass. */
  readonly legacy: LegacyRange;
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
  #fh: WalReadFile | undefined;

  constructor(readonly chunk: number) {
    this.#buf = Buffer.alloc(chunk);
  }

  attach(fh: WalReadFile): void {
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
      const bytesRead = await this.#fh.readInto(this.#buf, got, this.#buf.length - got, off + got);
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

export class WalFileReader {
  readonly dir: string;
  readonly #fs: WalFs;
  readonly #chunk: number;
  readonly #stride: number;
  readonly #beforeOpen: WalFileReaderOptions["beforeOpen"];
  /** Keyed by file name and inode, least recently used first. */
  readonly #indexes = new Map<string, FileIndex>();

  constructor(dir: string, o: WalFileReaderOptions = {}) {
    this.dir = dir;
    this.#fs = o.fs ?? nodeWalFs;
    this.#chunk = o.chunkBytes ?? 256 * 1024;
    this.#stride = o.stride ?? 1024;
    this.#beforeOpen = o.beforeOpen;
  }

  /** The generation file beside the directory; the legacy generation when there is none. */
  async generation(): Promise<string> {
    return (await readGeneration(this.#fs, this.dir)).id;
  }

  /** The safe point (telemetry.safe_seq); 0 while it does not exist (first run: nothing committed). */
  async committed(): Promise<number> {
    const raw = await this.#fs.readFile(walPaths(this.dir).safeSeq);
    if (raw === undefined) return 0;
    const seq = decodeSafeSeq(raw);
    if (seq === undefined) throw new WalFailHard("SAFESEQ_CORRUPT", this.dir, `telemetry.safe_seq is ${raw.byteLength} bytes, not 8`, { length: raw.byteLength });
    return seq;
  }

  async *scan(from: number, to: number, opts: ScanOptions = {}): AsyncGenerator<ScannedEntry[]> {
    const legacy = legacyRangeOf(await readGeneration(this.#fs, this.dir));
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

  /**
   * Every retained file (base, sealed segments, active file, safe point)
   * walked frame by frame against every invariant at once, without opening
   * the WAL: no recovery, no lock, nothing written. The safe point is read
   * first: frames it covers were fsynced before it was published. If the
   * directory listing changed meanwhile (a seal or a reclamation by a live
   * writer), it is walked again. Memory: one chunk, one frame, and the list of
   * frames the inspection reports.
   */
  async inspect(): Promise<WalInspection> {
    for (let attempt = 1; ; attempt++) {
      const before = (await this.#fs.list(this.dir)).sort().join("/");
      const img = await this.#walkAll();
      const after = (await this.#fs.list(this.dir)).sort().join("/");
      if (before === after || attempt >= RETRIES) return inspectWalked(img);
    }
  }

  async #walkAll(): Promise<WalkedImage> {
    const p = walPaths(this.dir);
    const safeSeqBytes = await this.#fs.readFile(p.safeSeq);
    let layoutViolations: Violation[] = [];
    let layout: { base: number; retained: Segment[] } = { base: 0, retained: [] };
    try {
      layout = await readSegmentLayout(this.#fs, this.dir);
    } catch (e) {
      if (!(e instanceof WalFailHard)) throw e;
      layoutViolations = [{ code: e.code, invariant: e.code === "FIRST_SEQ_NOT_ONE" ? "R1_FIRST_SEQ_IS_ONE" : "R2_SEQ_CONTIGUOUS", msg: e.message }];
    }
    const files: WalkedFile[] = [];
    for (const s of layout.retained) files.push(await this.#walkFile(s.path, { name: s.name, first: s.first, last: s.last, sha256: s.sha256 }));
    files.push(await this.#walkFile(p.wal));
    // The generation record beside the directory says which legacy gaps an upgrade accepted (OBS-4).
    let legacy: { legacyThrough?: number; legacyGaps?: LegacyGap[] } = {};
    try {
      const g = await readGeneration(this.#fs, this.dir);
      if (g.legacyThrough !== undefined) legacy = { legacyThrough: g.legacyThrough, legacyGaps: g.legacyGaps ?? [] };
    } catch (e) {
      if (!(e instanceof WalFailHard)) throw e;
      layoutViolations = [...layoutViolations, { code: e.code, invariant: "R2_SEQ_CONTIGUOUS", msg: e.message }];
    }
    return { files, safeSeqBytes, base: layout.base, layoutViolations, ...legacy };
  }

  /** One file's frames, read in chunks; a file that vanished walks as empty (the listing check above notices). */
  async #walkFile(path: string, segment?: ImageFile["segment"]): Promise<WalkedFile> {
    const walker = new FrameWalker(segment);
    let fh: WalReadFile;
    try {
      fh = await this.#fs.openRead(path);
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return walker.finish();
      throw e;
    }
    try {
      const buf = Buffer.alloc(this.#chunk);
      for (let pos = 0; ; ) {
        const n = await fh.readInto(buf, 0, buf.length, pos);
        if (n === 0) break;
        walker.push(buf.subarray(0, n));
        pos += n;
      }
    } finally {
      await fh.close();
    }
    return walker.finish();
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
      return await readSegmentLayout(this.#fs, this.dir);
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
      key = `${part.name}:${await fh.identity()}`;
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
        if (seq <= st.legacy.through) {
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

  async #open(part: Part, st: ScanState): Promise<WalReadFile> {
    try {
      return await this.#fs.openRead(part.path);
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

  /** The frame at `off`, which must carry `seq` (or a higher seq the legacy upgrade recorded as a gap after `seq - 1`). */
  #decode(part: Part, buf: ReadBuffer, seq: number, off: number, len: number, legacy: LegacyRange): WalEntry {
    const entry = decodePayload(buf.bytes(off + FRAME_HEADER_BYTES, len));
    if (!entry) throw new WalFailHard("WAL_CORRUPT_INVALID_JSON", this.dir, `${part.name}: committed frame ${seq} at byte ${off} is not a valid entry`, { seq, offset: off, file: part.name });
    if (entry.seq === seq || (entry.seq > seq && legacy.accepts(seq - 1, entry.seq))) return entry;
    if (part.sealed && off === 0) throw new WalFailHard("SEGMENT_INVALID", this.dir, `${part.name} starts with seq ${entry.seq}, not ${seq}`, { seq: entry.seq, expected: seq, segment: part.name });
    throw new WalFailHard("SEQ_GAP", this.dir, `${part.name}: frame at byte ${off} has seq ${entry.seq}, expected ${seq}`, { seq: entry.seq, expected: seq, offset: off, file: part.name });
  }

  /** The file ends before a frame the chain or the safe point says exists: committed data is gone. */
  #short(part: Part, st: ScanState, seq: number): WalFailHard {
    if (part.sealed) return new WalFailHard("SEGMENT_INVALID", this.dir, `${part.name} is truncated: it ends before frame ${seq}, its name says it holds ${part.first}..${part.last}`, { seq, segment: part.name });
    return new WalFailHard("SAFESEQ_NOT_FOUND", this.dir, `telemetry.wal ends before frame ${seq}; the safe point names seq ${st.to}`, { seq, safe_seq: st.to });
  }

  /** A sealed segment holds exactly its named frames: bytes after the last one mean it is not the file its name says. */
  async #checkEnd(part: Part, fh: WalReadFile, off: number): Promise<void> {
    const size = await fh.size();
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

/** Read-only inspection of a WAL directory, segments included (what `autonomy wal inspect|verify` show). */
export async function inspectWalDir(dir: string, fs: WalFs = nodeWalFs): Promise<WalInspection> {
  return new WalFileReader(dir, { fs }).inspect();
}

/**
 * Committed entries (base < seq ≤ safe_seq, ≥ `from`) read without opening the
 * WAL — safe beside a live writer, which only ever appends beyond the safe
 * point it has published. Returns the inspection too; when it names a
 * fail-hard cause, `entries` is empty. Collects the entries in memory (an
 * operator's and a test's tool; the exporter streams with `scan` instead).
 */
export async function readCommitted(dir: string, from = 1, fs: WalFs = nodeWalFs): Promise<{ entries: WalEntry[]; inspection: WalInspection }> {
  const reader = new WalFileReader(dir, { fs });
  const inspection = await reader.inspect();
  if (inspection.fail_hard) return { entries: [], inspection };
  const entries: WalEntry[] = [];
  for await (const page of reader.scan(from, inspection.safe_seq ?? 0)) entries.push(...page.map(({ seq, event }) => ({ seq, event })));
  return { entries, inspection };
}
