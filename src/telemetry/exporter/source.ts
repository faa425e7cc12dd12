import type { Wal } from "../wal/index.js";
import type { ScanOptions, ScannedEntry } from "../wal/index.js";

/** What the exporter reads: the committed range of one WAL (a WalFileReader, or an open Wal through walSource). */
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
