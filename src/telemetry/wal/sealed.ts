import { FRAME_HEADER_BYTES, decodePayload } from "./codec.js";
import type { WalEntry } from "./codec.js";
import { WalFailHard } from "./errors.js";
import type { WalFs } from "./fs.js";
import { scanFrames } from "./scan.js";
import { NO_LEGACY } from "./generation.js";
import type { LegacyRange } from "./generation.js";
import { writeBase } from "./segments.js";
import type { Segment } from "./segments.js";

export interface Reclaimed {
  segments: number;
  bytes: number;
  /** Every seq ≤ base is gone. */
  base: number;
}

/**
 * The sealed segments an open WAL still holds, and the reclaimed base before
 * them (docs/wal.md "Bounded disk: segments"). Sealed segments are never
 * written again, so reading one back is a whole-file read, cached for the
 * last segment read (paging through a segment costs one read of it).
 */
export class SealedSegments {
  readonly #fs: WalFs;
  readonly #dir: string;
  #base: number;
  #list: Segment[];
  #cache: { name: string; data: Buffer; offsets: number[] } | undefined;

  /** The gaps a legacy upgrade recorded (OBS-4); a sealed segment may hold exactly those. */
  readonly #legacy: LegacyRange;

  constructor(fs: WalFs, dir: string, base: number, retained: readonly Segment[], legacy: LegacyRange = NO_LEGACY) {
    this.#fs = fs;
    this.#dir = dir;
    this.#legacy = legacy;
    this.#base = base;
    this.#list = [...retained];
  }

  get base(): number {
    return this.#base;
  }

  get list(): readonly Segment[] {
    return this.#list;
  }

  add(seg: Segment): void {
    this.#list.push(seg);
  }

  /**
   * Deletes every segment whose frames are all ≤ `upTo`: write base = the last
   * reclaimed seq (durably), then unlink, then fsync(dir). A crash between the
   * two leaves segments wholly ≤ base, which recovery deletes.
   */
  async reclaim(upTo: number): Promise<Reclaimed> {
    const gone = this.#list.filter((s) => s.last <= upTo);
    const last = gone[gone.length - 1];
    if (last === undefined) return { segments: 0, bytes: 0, base: this.#base };
    await writeBase(this.#fs, this.#dir, last.last);
    this.#base = last.last;
    this.#list = this.#list.filter((s) => s.last > last.last);
    if (gone.some((s) => s.name === this.#cache?.name)) this.#cache = undefined;
    let bytes = 0;
    for (const s of gone) {
      bytes += (await this.#fs.fileSize(s.path)) ?? 0;
      await this.#fs.unlink(s.path);
    }
    await this.#fs.fsyncDir(this.#dir);
    return { segments: gone.length, bytes, base: this.#base };
  }

  /**
   * Appends entries from `seq` on (below `end`, at most `limit` in `out`) to
   * `out`; returns the next seq to read. A segment reclaimed while we waited
   * for its read is skipped: those seqs are gone by design.
   */
  async read(seq: number, end: number, limit: number, out: WalEntry[]): Promise<number> {
    seq = Math.max(seq, this.#base + 1);
    while (seq < end && out.length < limit) {
      const seg = this.#list.find((s) => s.first <= seq && seq <= s.last);
      if (!seg) return seq;
      const read = await this.#load(seg);
      if (!read) {
        if (seg.last > this.#base) throw new WalFailHard("SEGMENT_INVALID", this.#dir, `${seg.name} disappeared while the WAL was open`, { segment: seg.name });
        seq = Math.max(seq, this.#base + 1);
        continue;
      }
      for (; seq <= seg.last && out.length < limit; seq++) {
        if (read.offsets[seq - seg.first] === undefined) continue; // a legacy gap (OBS-4)
        out.push(entryAt(read, seg, seq, this.#dir));
      }
    }
    return seq;
  }

  async #load(seg: Segment): Promise<{ data: Buffer; offsets: number[] } | undefined> {
    if (this.#cache?.name === seg.name) return this.#cache;
    const raw = await this.#fs.readFile(seg.path);
    if (raw === undefined) return undefined;
    const data = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    const { offsets } = scanFrames(data, { kind: "legacy" }, this.#dir, seg.first, this.#legacy);
    this.#cache = { name: seg.name, data, offsets };
    return this.#cache;
  }
}

function entryAt(read: { data: Buffer; offsets: number[] }, seg: Segment, seq: number, dir: string): WalEntry {
  const off = read.offsets[seq - seg.first] ?? 0;
  let end = read.data.length;
  for (let i = seq - seg.first + 1; i < read.offsets.length; i++) {
    const o = read.offsets[i];
    if (o !== undefined) {
      end = o; // the next frame, past any legacy gap
      break;
    }
  }
  const entry = decodePayload(read.data.subarray(off + FRAME_HEADER_BYTES, end));
  if (!entry || entry.seq !== seq) throw new WalFailHard("SEGMENT_INVALID", dir, `${seg.name}: frame ${seq} no longer decodes (changed on disk after recovery)`, { seq, segment: seg.name });
  return entry;
}
