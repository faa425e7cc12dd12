import { dirname } from "node:path";
import type { WalFs } from "../../telemetry/index.js";
import { SEGMENT_ID_RE } from "../types.js";
import type { EvictionReason, EvictionRecord, SegmentKind } from "../types.js";
import { isSegmentKind } from "./names.js";

/** One line of `evictions.log`: the public record plus what recovery needs (its sequence number and the segment's kind). */
export interface LoggedEviction extends EvictionRecord {
  seq: number;
  kind: SegmentKind;
}

const REASONS: ReadonlySet<string> = new Set<EvictionReason>(["lru_ceiling", "lru_consumed", "delivered_evict_on_relay", "purged", "deadletter_retention", "corrupt", "orphan"]);

export function isEvictionReason(r: unknown): r is EvictionReason {
  return typeof r === "string" && REASONS.has(r);
}

/** Parses one line; undefined when it is not a well-formed record. */
function parseLine(line: string): LoggedEviction | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof doc !== "object" || doc === null) return undefined;
  const r = doc as Record<string, unknown>;
  const ok =
    Number.isSafeInteger(r.seq) && (r.seq as number) > 0 && typeof r.id === "string" && SEGMENT_ID_RE.test(r.id) && isSegmentKind(r.kind) &&
    Number.isSafeInteger(r.bytes) && (r.bytes as number) >= 0 && isEvictionReason(r.reason) &&
    typeof r.at === "string" && !Number.isNaN(Date.parse(r.at));
  if (!ok) return undefined;
  return { seq: r.seq as number, id: r.id as string, kind: r.kind as SegmentKind, bytes: r.bytes as number, reason: r.reason as EvictionReason, at: r.at as string };
}

/**
 * An append-only log of eviction records, one JSON line each, every append
 * fsynced before the eviction it records goes ahead. Only the tail can be torn
 * (a power cut during an append that was never acknowledged): `open` keeps
 * every record up to the last valid one (sequence numbers increasing) and cuts
 * the file after it.
 */
export class EvictionLog {
  #records: LoggedEviction[] = [];
  readonly #bySeq = new Map<number, LoggedEviction>();
  #lastSeq = 0;
  #length = 0;
  /** Whether the log's directory entry is known durable (it was there at open, or an append fsynced the directory). */
  #entryDurable = false;

  private constructor(
    private readonly fs: WalFs,
    private readonly path: string,
  ) {}

  static async open(fs: WalFs, path: string): Promise<EvictionLog> {
    const log = new EvictionLog(fs, path);
    const raw = await fs.readFile(path);
    if (raw === undefined) return log;
    log.#entryDurable = true;
    const buf = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    // Every line up to the last valid record is kept; a line that does not parse BEFORE a valid record is damage
    // (not a crash: each append is fsynced before the next), skipped so the records after it are not lost.
    let pos = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, pos);
      if (nl < 0) break;
      const rec = parseLine(buf.subarray(pos, nl).toString("utf8"));
      if (rec && rec.seq > log.#lastSeq) {
        log.#records.push(rec);
        log.#bySeq.set(rec.seq, rec);
        log.#lastSeq = rec.seq;
        log.#length = nl + 1;
      }
      pos = nl + 1;
    }
    if (log.#length < buf.length) {
      // A torn tail from an append that never completed: no eviction went ahead on it (see SegmentStore).
      const f = await fs.openFile(path);
      try {
        await f.truncate(log.#length);
        await f.sync();
      } finally {
        await f.close();
      }
    }
    return log;
  }

  /**
   * After a failed append: cuts whatever it may have left past the last
   * record, durably, so a line whose fsync reported failure cannot reappear
   * after a crash and record an eviction that was rolled back.
   */
  async undoTail(): Promise<void> {
    const f = await this.fs.openFile(this.path);
    try {
      if ((await f.size()) !== this.#length) await f.truncate(this.#length);
      await f.sync();
    } finally {
      await f.close().catch(() => undefined);
    }
  }

  get records(): readonly LoggedEviction[] {
    return this.#records;
  }

  get nextSeq(): number {
    return this.#lastSeq + 1;
  }

  has(seq: number, id: string): boolean {
    return this.#bySeq.get(seq)?.id === id;
  }

  /** Appends `rec` (its seq must be `nextSeq`) and fsyncs; resolves once the record is durable. */
  async append(rec: LoggedEviction): Promise<void> {
    if (rec.seq !== this.nextSeq) throw new Error(`eviction log: appending seq ${rec.seq}, expected ${this.nextSeq}`);
    const line = Buffer.from(JSON.stringify({ seq: rec.seq, id: rec.id, kind: rec.kind, bytes: rec.bytes, reason: rec.reason, at: rec.at }) + "\n", "utf8");
    const f = await this.fs.openFile(this.path);
    try {
      // A failed append may have left bytes past the last record: cut them first.
      if ((await f.size()) !== this.#length) await f.truncate(this.#length);
      await f.write(line, this.#length);
      await f.sync();
    } finally {
      await f.close().catch(() => undefined);
    }
    // The first append creates the file: its name must be durable before the record counts as written.
    if (!this.#entryDurable) {
      await this.fs.fsyncDir(dirname(this.path));
      this.#entryDurable = true;
    }
    this.#length += line.byteLength;
    this.#records.push(rec);
    this.#bySeq.set(rec.seq, rec);
    this.#lastSeq = rec.seq;
  }
}
