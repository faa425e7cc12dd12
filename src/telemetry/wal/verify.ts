import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";
import { FRAME_HEADER_BYTES, MAX_FRAME_BYTES, decodePayload, decodeSafeSeq } from "./codec.js";
import type { WalFailHardCause } from "./errors.js";
import { legacyRangeOf } from "./generation.js";
import type { LegacyGap, LegacyRange } from "./generation.js";

/** The invariants of seed 002's wal_verify.json, in its order and spelling. */
export const VERIFY_INVARIANTS = ["R1_FIRST_SEQ_IS_ONE", "R2_SEQ_CONTIGUOUS", "R3_SAFESEQ_LE_MAXSEQ", "R4_SAFESEQ_FRAME_EXISTS", "R5_NO_PHANTOMS", "NO_JSON_CORRUPTION"] as const;
export type VerifyInvariant = (typeof VERIFY_INVARIANTS)[number];

export interface Violation {
  code: WalFailHardCause | "PHANTOM_BEYOND_SAFESEQ";
  invariant: VerifyInvariant;
  msg: string;
}

export interface InspectedFrame {
  seq: number | null;
  /** Byte offset inside its file. */
  offset: number;
  length: number;
  valid_json: boolean;
  /** The sealed segment holding the frame; absent for the active telemetry.wal. */
  segment?: string;
}

export interface WalInspection {
  frames: InspectedFrame[];
  safe_seq: number | null;
  safe_seq_status: "ok" | "missing" | "corrupt";
  /** Every seq ≤ base was reclaimed (0 without segments: the seed's layout). */
  base: number;
  /** Sealed segment names, oldest first. */
  segments: string[];
  max_seq: number;
  /** Bytes of all retained files. */
  wal_bytes: number;
  /** Bytes after the last complete frame of the active file. */
  torn_tail_bytes: number;
  invariants: Record<VerifyInvariant, { pass: boolean; msg: string }>;
  violations: Violation[];
  /** The fail-hard cause recovery would raise, if any (exit 5). */
  fail_hard: WalFailHardCause | null;
}

/** One file of a WAL image: a sealed segment (with its name's range) or the active telemetry.wal. */
export interface ImageFile {
  data: Uint8Array;
  segment?: { name: string; first: number; last: number; sha256?: string | undefined };
}

/** A file's first frame `seq` where `first` is expected: exactly, or later within an accepted legacy range (OBS-4). */
function startsAt(seq: number | null | undefined, first: number, legacy: LegacyRange): boolean {
  return seq === first || (typeof seq === "number" && seq > first && legacy.accepts(first - 1, seq));
}

/** One file of a WAL after its frames were walked: what inspection judges (its bytes are no longer needed). */
export interface WalkedFile {
  frames: InspectedFrame[];
  /** Byte offset after the last complete frame. */
  end: number;
  /** Bytes in the file. */
  size: number;
  segment?: ImageFile["segment"];
  /** False only for a sealed segment whose bytes do not match the SHA-256 its name carries. */
  digestMatches: boolean;
}

/**
 * Walks the frames of one file by their length headers as its bytes arrive
 * (one call with a whole file, or chunk by chunk from a reader). Keeps only
 * the bytes of a frame not yet complete, and concatenates them only once the
 * whole frame is there, so memory stays at one chunk plus one frame.
 */
export class FrameWalker {
  readonly #frames: InspectedFrame[] = [];
  readonly #segment: ImageFile["segment"];
  readonly #hash: Hash | undefined;
  #pending: Buffer[] = [];
  #pendingLen = 0;
  /** File offset of the first pending byte (the end of the complete frames so far). */
  #end = 0;
  /** Pending bytes needed before parsing can make progress. */
  #need = FRAME_HEADER_BYTES;
  #size = 0;
  #stopped = false;

  constructor(segment?: ImageFile["segment"]) {
    this.#segment = segment;
    this.#hash = segment?.sha256 === undefined ? undefined : createHash("sha256");
  }

  push(chunk: Uint8Array): void {
    this.#size += chunk.byteLength;
    this.#hash?.update(chunk);
    if (this.#stopped || chunk.byteLength === 0) return;
    // A copy: callers reuse their read buffer.
    this.#pending.push(Buffer.from(chunk));
    this.#pendingLen += chunk.byteLength;
    if (this.#pendingLen >= this.#need) this.#parse();
  }

  #parse(): void {
    const view = this.#pending.length === 1 ? (this.#pending[0] ?? Buffer.alloc(0)) : Buffer.concat(this.#pending, this.#pendingLen);
    let pos = 0;
    this.#need = FRAME_HEADER_BYTES;
    while (pos + FRAME_HEADER_BYTES <= view.length) {
      const len = view.readUInt32BE(pos);
      if (len > MAX_FRAME_BYTES) {
        this.#stopped = true;
        break;
      }
      if (pos + FRAME_HEADER_BYTES + len > view.length) {
        this.#need = FRAME_HEADER_BYTES + len;
        break;
      }
      const entry = decodePayload(view.subarray(pos + FRAME_HEADER_BYTES, pos + FRAME_HEADER_BYTES + len));
      this.#frames.push({ seq: entry?.seq ?? null, offset: this.#end + pos, length: len, valid_json: entry !== undefined, ...(this.#segment ? { segment: this.#segment.name } : {}) });
      pos += FRAME_HEADER_BYTES + len;
    }
    this.#end += pos;
    const rest = this.#stopped ? Buffer.alloc(0) : view.subarray(pos);
    this.#pending = rest.length > 0 ? [rest] : [];
    this.#pendingLen = rest.length;
  }

  finish(): WalkedFile {
    const digestMatches = this.#hash === undefined || this.#hash.digest("hex") === this.#segment?.sha256;
    return { frames: this.#frames, end: this.#end, size: this.#size, ...(this.#segment ? { segment: this.#segment } : {}), digestMatches };
  }
}

function walkBytes(file: ImageFile): WalkedFile {
  const walker = new FrameWalker(file.segment);
  walker.push(file.data);
  return walker.finish();
}

/**
 * Read-only check of a WAL image against every invariant at once (unlike
 * recovery, which stops at the first): what an operator or the portability
 * evidence wants to see. Never modifies anything. `wal` is the seed's single
 * file; `inspectWalImage` takes sealed segments and a base too.
 */
export function inspectWal(wal: Uint8Array, safeSeqBytes: Uint8Array | undefined): WalInspection {
  return inspectWalImage({ files: [{ data: wal }], safeSeqBytes, base: 0 });
}

export interface WalImage {
  /** Sealed segments oldest first, then the active file. */
  files: ImageFile[];
  safeSeqBytes: Uint8Array | undefined;
  base: number;
  /** Problems found before the frames (segment chain, base file), as recovery would raise them. */
  layoutViolations?: Violation[];
  /** Seqs ≤ this were accepted with gaps by a legacy upgrade (OBS-4, the generation record): exactly the gaps in `legacyGaps` are not violations. */
  legacyThrough?: number;
  legacyGaps?: LegacyGap[];
}

export function inspectWalImage(img: WalImage): WalInspection {
  return inspectWalked({ files: img.files.map(walkBytes), safeSeqBytes: img.safeSeqBytes, base: img.base, layoutViolations: img.layoutViolations ?? [], ...(img.legacyThrough !== undefined ? { legacyThrough: img.legacyThrough, legacyGaps: img.legacyGaps ?? [] } : {}) });
}

/** A WAL image whose files were walked already (by a streaming reader, or from bytes). */
export interface WalkedImage {
  files: WalkedFile[];
  safeSeqBytes: Uint8Array | undefined;
  base: number;
  layoutViolations: Violation[];
  /** As in WalImage. */
  legacyThrough?: number;
  legacyGaps?: LegacyGap[];
}

export function inspectWalked(img: WalkedImage): WalInspection {
  const frames: InspectedFrame[] = [];
  const range = legacyRangeOf(img);
  const legacy = range.through;
  const violations: Violation[] = [...img.layoutViolations];
  const fail = (v: Violation): void => void violations.push(v);
  const segmentViolations: Violation[] = [];
  let torn = 0;
  for (const walked of img.files) {
    // One by one: spreading a file's frames into push() overflows the stack past ~100k frames.
    for (const f of walked.frames) frames.push(f);
    const seg = walked.segment;
    if (!seg) torn = walked.size - walked.end;
    else if (walked.frames.every((f) => f.valid_json) && walked.end === walked.size && !walked.digestMatches) {
      segmentViolations.push({ code: "SEGMENT_INVALID", invariant: "NO_JSON_CORRUPTION", msg: `${seg.name}: its bytes no longer match the SHA-256 recorded when it was sealed` });
    } else if (walked.frames.every((f) => f.valid_json) && (walked.end !== walked.size || !startsAt(walked.frames[0]?.seq, seg.first, range) || walked.frames[walked.frames.length - 1]?.seq !== seg.last)) {
      // (A frame that is not valid JSON is reported as itself below, as recovery does.)
      segmentViolations.push({ code: "SEGMENT_INVALID", invariant: "R2_SEQ_CONTIGUOUS", msg: `${seg.name} does not hold exactly seqs ${seg.first}..${seg.last} (${walked.frames.length} frames in ${walked.end} of ${walked.size} bytes)` });
    }
  }
  const safe = img.safeSeqBytes === undefined ? null : (decodeSafeSeq(img.safeSeqBytes) ?? null);
  const status: WalInspection["safe_seq_status"] = img.safeSeqBytes === undefined ? "missing" : safe === null ? "corrupt" : "ok";
  const first = img.base + 1;
  // Frames up to the safe point. Counted by seq, which is the frame count when seqs are contiguous; legacy gaps make it fewer.
  const atSafe = legacy > 0 && safe !== null ? frames.findIndex((f) => f.seq === safe) : -1;
  const limit = safe === null ? Number.POSITIVE_INFINITY : atSafe >= 0 ? atSafe + 1 : safe - img.base;
  const committed = frames.filter((_, i) => i < limit);

  const badJson = committed.findIndex((f) => !f.valid_json);
  violations.push(...segmentViolations.filter(() => badJson < 0));
  if (badJson >= 0) fail({ code: "WAL_CORRUPT_INVALID_JSON", invariant: "NO_JSON_CORRUPTION", msg: `committed frame ${badJson + first} at byte ${committed[badJson]?.offset ?? 0}${committed[badJson]?.segment ? ` of ${committed[badJson]?.segment}` : ""} is not a valid entry` });
  const seqs = committed.map((f) => f.seq);
  if (seqs.length > 0 && !startsAt(seqs[0], first, range)) fail({ code: "FIRST_SEQ_NOT_ONE", invariant: "R1_FIRST_SEQ_IS_ONE", msg: `first ${img.base > 0 ? "retained " : ""}frame has seq ${String(seqs[0])}${img.base > 0 ? `, expected ${first} (base ${img.base})` : ""}` });
  const gap = seqs.findIndex((s, i) => i > 0 && s !== null && seqs[i - 1] !== null && s !== (seqs[i - 1] ?? 0) + 1 && !range.accepts(seqs[i - 1] ?? 0, s));
  if (gap > 0) fail({ code: "SEQ_GAP", invariant: "R2_SEQ_CONTIGUOUS", msg: `seq ${String(seqs[gap])} follows ${String(seqs[gap - 1])}` });
  const maxSeq = frames.reduce((m, f) => Math.max(m, f.seq ?? 0), img.base);
  if (safe !== null && safe > img.base && maxSeq > img.base && safe > maxSeq) fail({ code: "SAFESEQ_GT_MAXSEQ", invariant: "R3_SAFESEQ_LE_MAXSEQ", msg: `safe_seq=${safe} > maxSeq=${maxSeq}` });
  if (safe !== null && safe > img.base && !frames.some((f) => f.seq === safe)) fail({ code: "SAFESEQ_NOT_FOUND", invariant: "R4_SAFESEQ_FRAME_EXISTS", msg: `no frame with seq ${safe}` });
  if (safe !== null && safe < img.base) fail({ code: "SEGMENT_INVALID", invariant: "R4_SAFESEQ_FRAME_EXISTS", msg: `safe_seq=${safe} is below the reclaimed base ${img.base}` });
  // A segment is sealed only once the safe point covers it, so sealed frames beyond it mean the safe point went back (recovery: SEGMENT_INVALID).
  const sealedEnd = img.files.reduce((m, f) => Math.max(m, f.segment?.last ?? 0), img.base);
  if (safe !== null && safe >= img.base && safe < sealedEnd) fail({ code: "SEGMENT_INVALID", invariant: "R5_NO_PHANTOMS", msg: `sealed segments reach seq ${sealedEnd}, beyond safe_seq=${safe}` });
  const phantoms = safe === null ? 0 : frames.length - Math.min(frames.length, Math.max(0, limit));
  if (phantoms > 0) fail({ code: "PHANTOM_BEYOND_SAFESEQ", invariant: "R5_NO_PHANTOMS", msg: `${phantoms} frame(s) beyond safe_seq=${safe ?? 0}; recovery discards them` });
  if (status === "corrupt") fail({ code: "SAFESEQ_CORRUPT", invariant: "R3_SAFESEQ_LE_MAXSEQ", msg: `telemetry.safe_seq is ${img.safeSeqBytes?.byteLength ?? 0} bytes, not 8` });

  const invariants = Object.fromEntries(VERIFY_INVARIANTS.map((inv) => {
    const v = violations.find((x) => x.invariant === inv);
    return [inv, { pass: v === undefined, msg: v?.msg ?? "ok" }];
  })) as WalInspection["invariants"];
  const hard = violations.find((v) => v.code !== "PHANTOM_BEYOND_SAFESEQ");
  const segments = img.files.flatMap((f) => (f.segment ? [f.segment.name] : []));
  const bytes = img.files.reduce((n, f) => n + f.size, 0);
  return { frames, safe_seq: safe, safe_seq_status: status, base: img.base, segments, max_seq: maxSeq, wal_bytes: bytes, torn_tail_bytes: torn, invariants, violations, fail_hard: hard ? (hard.code as WalFailHardCause) : null };
}
