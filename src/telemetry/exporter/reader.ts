/**
 * Read-only, streaming access to a WAL's committed entries, safe next to a
 * live writer in another process: the safe point is read first, and every
 * frame up to it was fsynced before the safe point named it (seed 001 §3.6),
 * so the range 1..safe_seq is stable while the writer appends past it.
 * Nothing is opened for writing and nothing is truncated; recovery is the
 * writer's business.
 *
 * Memory: one read buffer (256 KiB, or one frame if a frame is larger) and a
 * sparse index of frame offsets (one number per 1024 frames), so a scan from
 * any seq skips at most 1023 frame headers.
 */
import { open, readFile } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { errnoCode } from "../../lib/index.js";
import { FRAME_HEADER_BYTES, MAX_FRAME_BYTES, WalFailHard, decodePayload, decodeSafeSeq, walPaths } from "../wal/index.js";
import type { Wal, WalEntry } from "../wal/index.js";

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
  /**
   * Committed entries `from..to` in seq order (`to` ≤ a value committed()
   * returned), in pages of at most a few hundred entries. Entries whose seq
   * `skip` accepts are neither decoded nor yielded.
   */
  scan(from: number, to: number, opts?: ScanOptions): AsyncGenerator<ScannedEntry[]>;
}

export interface ScanOptions {
  skip?: (seq: number) => boolean;
}

/** Most entries per page. */
const PAGE = 512;

export interface WalFileReaderOptions {
  chunkBytes?: number;
  /** Frames between two remembered offsets. */
  stride?: number;
}

export class WalFileReader implements WalSource {
  readonly dir: string;
  readonly #chunk: number;
  readonly #stride: number;
  /** #checkpoints[k] = byte offset of the frame with seq k·stride + 1. */
  #checkpoints: number[] = [];
  #ino: number | bigint | undefined;

  constructor(dir: string, o: WalFileReaderOptions = {}) {
    this.dir = dir;
    this.#chunk = o.chunkBytes ?? 256 * 1024;
    this.#stride = o.stride ?? 1024;
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
    from = Math.max(1, from);
    const skip = opts.skip;
    if (from > to) return;
    let fh: FileHandle;
    try {
      fh = await open(walPaths(this.dir).wal, "r");
    } catch (e) {
      if (errnoCode(e) === "ENOENT") throw new WalFailHard("SAFESEQ_NOT_FOUND", this.dir, `telemetry.wal is missing but the safe point names seq ${to}`, { safe_seq: to });
      throw e;
    }
    try {
      const st = await fh.stat({ bigint: true });
      if (this.#ino !== st.ino) {
        this.#ino = st.ino;
        this.#checkpoints = [];
      }
      const k = Math.min(Math.floor((from - 1) / this.#stride), this.#checkpoints.length - 1);
      let seq = k >= 0 ? k * this.#stride + 1 : 1;
      let off = k >= 0 ? (this.#checkpoints[k] ?? 0) : 0;
      let buf = Buffer.alloc(this.#chunk);
      let bufStart = 0;
      let bufLen = 0;
      let page: ScannedEntry[] = [];
      const ensure = async (n: number): Promise<boolean> => {
        if (off >= bufStart && off + n <= bufStart + bufLen) return true;
        // The page's entries are decoded copies, so the buffer may be reused; yield before refilling anyway to keep pages small.
        if (buf.length < n) buf = Buffer.alloc(n);
        else if (buf.length > this.#chunk && n <= this.#chunk) buf = Buffer.alloc(this.#chunk);
        let got = 0;
        while (got < buf.length) {
          const { bytesRead } = await fh.read(buf, got, buf.length - got, off + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        bufStart = off;
        bufLen = got;
        return got >= n;
      };
      while (seq <= to) {
        if (page.length >= PAGE) {
          yield page;
          page = [];
        }
        if (!(await ensure(FRAME_HEADER_BYTES))) throw this.#short(seq, to);
        const len = buf.readUInt32BE(off - bufStart);
        if (len > MAX_FRAME_BYTES) throw new WalFailHard("WAL_CORRUPT_INVALID_JSON", this.dir, `committed frame ${seq} at byte ${off} has an impossible length ${len}`, { seq, offset: off });
        if (!(await ensure(FRAME_HEADER_BYTES + len))) throw this.#short(seq, to);
        if ((seq - 1) % this.#stride === 0 && (seq - 1) / this.#stride === this.#checkpoints.length) this.#checkpoints.push(off);
        if (seq >= from && !skip?.(seq)) {
          const start = off - bufStart + FRAME_HEADER_BYTES;
          const entry = decodePayload(buf.subarray(start, start + len));
          if (!entry) throw new WalFailHard("WAL_CORRUPT_INVALID_JSON", this.dir, `committed frame ${seq} at byte ${off} is not a valid entry`, { seq, offset: off });
          if (entry.seq !== seq) throw new WalFailHard("SEQ_GAP", this.dir, `frame at byte ${off} has seq ${entry.seq}, expected ${seq}`, { seq: entry.seq, expected: seq, offset: off });
          page.push({ seq, event: entry.event, bytes: len });
        }
        off += FRAME_HEADER_BYTES + len;
        seq += 1;
      }
      if (page.length > 0) yield page;
    } finally {
      await fh.close();
    }
  }

  #short(seq: number, to: number): WalFailHard {
    // The file ends before the safe point's frame: committed data is gone (or the WAL was replaced under us).
    this.#checkpoints = [];
    return new WalFailHard("SAFESEQ_NOT_FOUND", this.dir, `telemetry.wal ends before frame ${seq}; the safe point names seq ${to}`, { seq, safe_seq: to });
  }
}

/** An open, in-process Wal as a source (the writer's own offsets; same committed range). */
export function walSource(wal: Wal, pageSize = 256): WalSource {
  return {
    dir: wal.dir,
    committed: () => Promise.resolve(wal.lastSeq),
    async *scan(from: number, to: number, opts: ScanOptions = {}): AsyncGenerator<ScannedEntry[]> {
      let next = Math.max(1, from);
      while (next <= to) {
        const page = await wal.readFrom(next, Math.min(pageSize, to - next + 1));
        if (page.length === 0) return;
        const out = page.filter((e) => !opts.skip?.(e.seq)).map((e) => ({ ...e, bytes: Buffer.byteLength(JSON.stringify(e)) }));
        if (out.length > 0) yield out;
        next = (page[page.length - 1]?.seq ?? to) + 1;
      }
    },
  };
}
