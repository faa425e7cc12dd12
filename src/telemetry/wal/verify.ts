import { FRAME_HEADER_BYTES, MAX_FRAME_BYTES, decodePayload, decodeSafeSeq } from "./codec.js";
import type { WalFailHardCause } from "./errors.js";

/** The invariants of seed 002's wal_verify.json, in its order and spelling. */
export const VERIFY_INVARIANTS = ["R1_FIRST_SEQ_IS_ONE", "R2_SEQ_CONTIGUOUS", "R3_SAFESEQ_LE_MAXSEQ", "R4_SAFESEQ_FRAME_EXISTS", "R5_NO_PHANTOMS", "NO_JSON_CORRUPTION"] as const;
export type VerifyInvariant = (typeof VERIFY_INVARIANTS)[number];

export interface Violation {
  code: WalFailHardCause | "PHANTOM_BEYOND_SAFESEQ";
  invariant: VerifyInvariant;
  msg: string;
}

export interface WalInspection {
  frames: { seq: number | null; offset: number; length: number; valid_json: boolean }[];
  safe_seq: number | null;
  safe_seq_status: "ok" | "missing" | "corrupt";
  max_seq: number;
  wal_bytes: number;
  torn_tail_bytes: number;
  invariants: Record<VerifyInvariant, { pass: boolean; msg: string }>;
  violations: Violation[];
  /** The fail-hard cause recovery would raise, if any (exit 5). */
  fail_hard: WalFailHardCause | null;
}

/**
 * Read-only check of a WAL image against every invariant at once (unlike
 * recovery, which stops at the first): what an operator or the portability
 * evidence wants to see. Never modifies anything.
 */
export function inspectWal(wal: Uint8Array, safeSeqBytes: Uint8Array | undefined): WalInspection {
  const view = Buffer.from(wal.buffer, wal.byteOffset, wal.byteLength);
  const frames: WalInspection["frames"] = [];
  let pos = 0;
  while (pos + FRAME_HEADER_BYTES <= view.length) {
    const len = view.readUInt32BE(pos);
    if (len > MAX_FRAME_BYTES || pos + FRAME_HEADER_BYTES + len > view.length) break;
    const entry = decodePayload(view.subarray(pos + FRAME_HEADER_BYTES, pos + FRAME_HEADER_BYTES + len));
    frames.push({ seq: entry?.seq ?? null, offset: pos, length: len, valid_json: entry !== undefined });
    pos += FRAME_HEADER_BYTES + len;
  }
  const safe = safeSeqBytes === undefined ? null : (decodeSafeSeq(safeSeqBytes) ?? null);
  const status: WalInspection["safe_seq_status"] = safeSeqBytes === undefined ? "missing" : safe === null ? "corrupt" : "ok";
  const limit = safe ?? Number.POSITIVE_INFINITY;
  const committed = frames.filter((_, i) => i < limit);
  const violations: Violation[] = [];
  const fail = (v: Violation): void => void violations.push(v);

  const badJson = committed.findIndex((f) => !f.valid_json);
  if (badJson >= 0) fail({ code: "WAL_CORRUPT_INVALID_JSON", invariant: "NO_JSON_CORRUPTION", msg: `committed frame ${badJson + 1} at byte ${committed[badJson]?.offset ?? 0} is not a valid entry` });
  const seqs = committed.map((f) => f.seq);
  if (seqs.length > 0 && seqs[0] !== 1) fail({ code: "FIRST_SEQ_NOT_ONE", invariant: "R1_FIRST_SEQ_IS_ONE", msg: `first frame has seq ${String(seqs[0])}` });
  const gap = seqs.findIndex((s, i) => i > 0 && s !== null && seqs[i - 1] !== null && s !== (seqs[i - 1] ?? 0) + 1);
  if (gap > 0) fail({ code: "SEQ_GAP", invariant: "R2_SEQ_CONTIGUOUS", msg: `seq ${String(seqs[gap])} follows ${String(seqs[gap - 1])}` });
  const maxSeq = Math.max(0, ...frames.map((f) => f.seq ?? 0));
  if (safe !== null && safe > 0 && maxSeq > 0 && safe > maxSeq) fail({ code: "SAFESEQ_GT_MAXSEQ", invariant: "R3_SAFESEQ_LE_MAXSEQ", msg: `safe_seq=${safe} > maxSeq=${maxSeq}` });
  if (safe !== null && safe > 0 && !frames.some((f) => f.seq === safe)) fail({ code: "SAFESEQ_NOT_FOUND", invariant: "R4_SAFESEQ_FRAME_EXISTS", msg: `no frame with seq ${safe}` });
  const phantoms = safe === null ? 0 : frames.length - Math.min(frames.length, safe);
  if (phantoms > 0) fail({ code: "PHANTOM_BEYOND_SAFESEQ", invariant: "R5_NO_PHANTOMS", msg: `${phantoms} frame(s) beyond safe_seq=${safe ?? 0}; recovery discards them` });
  if (status === "corrupt") fail({ code: "SAFESEQ_CORRUPT", invariant: "R3_SAFESEQ_LE_MAXSEQ", msg: `telemetry.safe_seq is ${safeSeqBytes?.byteLength ?? 0} bytes, not 8` });

  const invariants = Object.fromEntries(VERIFY_INVARIANTS.map((inv) => {
    const v = violations.find((x) => x.invariant === inv);
    return [inv, { pass: v === undefined, msg: v?.msg ?? "ok" }];
  })) as WalInspection["invariants"];
  const hard = violations.find((v) => v.code !== "PHANTOM_BEYOND_SAFESEQ");
  return { frames, safe_seq: safe, safe_seq_status: status, max_seq: maxSeq, wal_bytes: view.length, torn_tail_bytes: view.length - pos, invariants, violations, fail_hard: hard ? (hard.code as WalFailHardCause) : null };
}
