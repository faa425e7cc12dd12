import { FRAME_HEADER_BYTES, MAX_FRAME_BYTES, decodePayload } from "./codec.js";
import { WalFailHard } from "./errors.js";
import { NO_LEGACY } from "./generation.js";
import type { LegacyRange } from "./generation.js";

/** How recovery treats the safe point: a committed seq (0 is valid: nothing committed), or legacy (no safe point at all). */
export type SafePoint = { kind: "safe"; seq: number } | { kind: "legacy" };

export interface ScanResult {
  /** Highest committed seq that survives recovery. */
  maxSeq: number;
  /** Bytes of the WAL to keep: the end of the safe-point frame (S2), not the structural end. */
  truncateTo: number;
  /** Bytes of structurally complete, in-sequence frames, phantoms included. */
  validBytes: number;
  /** Seq of the file's first frame (1, or the active segment's first once segments exist). */
  firstSeq: number;
  /** Byte offset of each kept frame; index = seq - firstSeq. */
  offsets: number[];
  /** Complete frames beyond the safe point that recovery discards (R5). */
  phantoms: number;
  /** Gaps accepted in the legacy range (OBS-4): seq `seq` follows `after`. Empty otherwise. */
  gaps: { after: number; seq: number }[];
}

/**
 * Bytes covered by complete frames, judged by their length headers alone. This
 * is the `validBytes` of steady-state detection (§3.4): a lone torn first frame
 * is a crash artifact of a first run, not state.
 */
export function structuralBytes(data: Uint8Array): number {
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  let pos = 0;
  while (pos + FRAME_HEADER_BYTES <= view.length) {
    const len = view.readUInt32BE(pos);
    if (len > MAX_FRAME_BYTES || pos + FRAME_HEADER_BYTES + len > view.length) break;
    pos += FRAME_HEADER_BYTES + len;
  }
  return pos;
}

/**
 * The recovery scan (seed 001 §3.3, scanFramesWithSafe). Walks frames from the
 * start; a torn tail is a crash artifact (stop). Inside the committed range —
 * before the frame whose seq equals the safe point — every violation fails
 * hard: bad JSON (WAL_CORRUPT_INVALID_JSON, reported as itself, WS-2), first
 * seq not 1 (R1), a gap (R2). Past the safe point, anything odd is a phantom
 * and ends the scan. Then R3 (safe ≤ max) and R4 (the safe frame exists).
 *
 * `firstSeq` is the seq the file must start with: 1 in the seed's layout, the
 * active segment's first seq once sealed segments precede it. A safe point of
 * `firstSeq - 1` names the end of the previous segment (nothing committed here).
 *
 * `legacy` (seed OBS-4): the gaps a legacy upgrade accepts — any, during the
 * upgrade itself; afterwards exactly the (after, seq) pairs it recorded. Those
 * (a first seq above `firstSeq` included) are returned in `gaps`, not failed;
 * any other gap is SEQ_GAP. `offsets` then has holes at the missing seqs.
 */
export function scanFrames(data: Uint8Array, safe: SafePoint, dir: string, firstSeq = 1, legacy: LegacyRange = NO_LEGACY): ScanResult {
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const offsets: number[] = [];
  const before = firstSeq - 1;
  let pos = 0;
  let prevSeq = before;
  let bytesAtSafe = safe.kind === "safe" && safe.seq === before ? 0 : undefined;
  const gaps: ScanResult["gaps"] = [];
  let frames = 0;
  const inCommitted = (): boolean => safe.kind === "legacy" || prevSeq < safe.seq;
  while (pos + FRAME_HEADER_BYTES <= view.length) {
    const len = view.readUInt32BE(pos);
    if (len > MAX_FRAME_BYTES || pos + FRAME_HEADER_BYTES + len > view.length) break; // torn tail
    const entry = decodePayload(view.subarray(pos + FRAME_HEADER_BYTES, pos + FRAME_HEADER_BYTES + len));
    if (!entry) {
      if (inCommitted()) throw new WalFailHard("WAL_CORRUPT_INVALID_JSON", dir, `frame ${frames + 1} at byte ${pos} is structurally complete but not a valid entry (JSON object with seq and event)`, { offset: pos, frame: frames + 1 });
      break;
    }
    const expected = prevSeq + 1;
    if (entry.seq > expected && legacy.accepts(prevSeq, entry.seq) && inCommitted()) {
      gaps.push({ after: prevSeq, seq: entry.seq });
    } else if (entry.seq !== expected) {
      if (!inCommitted()) break;
      if (frames === 0) {
        throw new WalFailHard("FIRST_SEQ_NOT_ONE", dir, `the first frame has seq ${entry.seq}${firstSeq === 1 ? "" : `, expected ${firstSeq}`}`, { seq: entry.seq, expected: firstSeq });
      }
      throw new WalFailHard("SEQ_GAP", dir, `seq ${entry.seq} follows ${prevSeq} at byte ${pos}`, { after: prevSeq, seq: entry.seq, offset: pos });
    }
    offsets[entry.seq - firstSeq] = pos;
    frames += 1;
    pos += FRAME_HEADER_BYTES + len;
    prevSeq = entry.seq;
    if (safe.kind === "safe" && entry.seq === safe.seq) bytesAtSafe = pos;
  }
  const validBytes = pos;
  if (safe.kind === "legacy") return { maxSeq: prevSeq, truncateTo: validBytes, validBytes, firstSeq, offsets, phantoms: 0, gaps };
  // R3 before R4; an empty WAL with a safe point is reported as a missing frame (OBS-2).
  if (safe.seq > before && prevSeq > before && safe.seq > prevSeq) {
    throw new WalFailHard("SAFESEQ_GT_MAXSEQ", dir, `safe_seq=${safe.seq} > maxSeq=${prevSeq}`, { safe_seq: safe.seq, max_seq: prevSeq });
  }
  if (bytesAtSafe === undefined) throw new WalFailHard("SAFESEQ_NOT_FOUND", dir, `no frame with seq ${safe.seq} (safe_seq) exists`, { safe_seq: safe.seq });
  const kept = safe.seq - before;
  return { maxSeq: safe.seq, truncateTo: bytesAtSafe, validBytes, firstSeq, offsets: offsets.slice(0, kept), phantoms: offsets.length - kept, gaps };
}
