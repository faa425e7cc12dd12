/**
 * Bounded disk (docs/wal.md "Bounded disk: segments"): the logical WAL is the
 * sealed segments in seq order, then the active `telemetry.wal`. A sealed
 * segment is named by the seqs it holds and the SHA-256 of its bytes,
 * `telemetry.wal.<first>-<last>.<sha256>` (20 digits each), so every decision
 * about it — chain, reclamation — is made from names alone, and recovery can
 * tell a sealed segment that changed on disk (the seed's frames carry no checksum). `telemetry.wal.base` is the seq
 * just before the oldest retained frame; missing means 0, the seed's layout. It is 16 bytes: the seq as 8-byte LE
 * (like the safe point) and the first 8 bytes of that field's SHA-256, because a flipped bit that moved it forward
 * would silently drop retained frames (the property test found that). An 8-byte base is the legacy form: read, unchecked.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { replaceFileDurably } from "../../lib/index.js";
import { decodeSafeSeq, encodeSafeSeq } from "./codec.js";
import { WalFailHard } from "./errors.js";
import type { WalFs } from "./fs.js";

export const BASE_FILE = "telemetry.wal.base";
export const BASE_TMP_FILE = "telemetry.wal.base.tmp";
const SEGMENT_RE = /^telemetry\.wal\.(\d{20})-(\d{20})(?:\.([0-9a-f]{64}))?$/;

export interface Segment {
  first: number;
  last: number;
  /** SHA-256 (hex) of the segment's bytes, carried in its name since sealing; checked by recovery. */
  sha256?: string;
  name: string;
  path: string;
}

export interface SegmentLayout {
  /** Every seq ≤ base was reclaimed. */
  base: number;
  /** Sealed segments with frames above base, oldest first, chained (first = previous last + 1). */
  retained: Segment[];
  /** Sealed segments wholly ≤ base: a reclamation a crash interrupted. */
  stale: Segment[];
  /** Seq the active segment's first frame must carry. */
  activeFirst: number;
}

/** `telemetry.wal.<first>-<last>[.<sha256>]`: the seqs it holds and, from sealing on, the digest of its bytes. */
export function segmentName(first: number, last: number, sha256?: string): string {
  return `telemetry.wal.${String(first).padStart(20, "0")}-${String(last).padStart(20, "0")}${sha256 ? `.${sha256}` : ""}`;
}

export function parseSegmentName(name: string): { first: number; last: number; sha256?: string } | undefined {
  const m = SEGMENT_RE.exec(name);
  if (!m) return undefined;
  const first = Number(m[1]);
  const last = Number(m[2]);
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last)) return undefined;
  return m[3] ? { first, last, sha256: m[3] } : { first, last };
}

/** True when `bytes` match the digest the segment's name carries (or it carries none). */
export function segmentDigestMatches(seg: { sha256?: string | undefined }, bytes: Uint8Array): boolean {
  return seg.sha256 === undefined || createHash("sha256").update(bytes).digest("hex") === seg.sha256;
}

const LEGACY_BASE_BYTES = 8;
const BASE_BYTES = 16;

function baseCheck(seqField: Uint8Array): Buffer {
  return createHash("sha256").update(seqField).digest().subarray(0, BASE_BYTES - LEGACY_BASE_BYTES);
}

/** The 16-byte base record: seq (8-byte LE) then the first 8 bytes of its SHA-256. */
export function encodeBase(seq: number): Uint8Array {
  const field = encodeSafeSeq(seq);
  return Buffer.concat([field, baseCheck(field)]);
}

/** telemetry.wal.base; 0 when missing. A wrong length or check fails hard: never guess which frames were reclaimed. */
export async function readBase(fs: WalFs, dir: string): Promise<{ base: number; present: boolean }> {
  const raw = await fs.readFile(join(dir, BASE_FILE));
  if (raw === undefined) return { base: 0, present: false };
  const corrupt = (why: string): WalFailHard => new WalFailHard("WAL_BASE_CORRUPT", dir, `telemetry.wal.base ${why}`, { length: raw.byteLength });
  if (raw.byteLength !== BASE_BYTES && raw.byteLength !== LEGACY_BASE_BYTES) throw corrupt(`is ${raw.byteLength} bytes, not ${BASE_BYTES} (or the legacy ${LEGACY_BASE_BYTES})`);
  const field = raw.subarray(0, LEGACY_BASE_BYTES);
  if (raw.byteLength === BASE_BYTES && !baseCheck(field).equals(raw.subarray(LEGACY_BASE_BYTES))) throw corrupt("fails its checksum: a bit changed on disk");
  const base = decodeSafeSeq(field);
  if (base === undefined) throw corrupt("does not decode");
  return { base, present: true };
}

/** temp → fsync → rename → fsync(dir), like the safe point. */
export async function writeBase(fs: WalFs, dir: string, seq: number): Promise<void> {
  await replaceFileDurably(join(dir, BASE_FILE), join(dir, BASE_TMP_FILE), encodeBase(seq), fs);
}

/** Sealed segments in the directory, oldest first. */
export async function listSegments(fs: WalFs, dir: string): Promise<Segment[]> {
  const out: Segment[] = [];
  for (const name of await fs.list(dir)) {
    const r = parseSegmentName(name);
    if (r) out.push({ ...r, name, path: join(dir, name) });
  }
  return out.sort((a, b) => a.first - b.first);
}

/**
 * Reads base and the sealed segments and checks the chain by name: R1 (the
 * first retained frame is base + 1) and R2 across segments. Pure reading.
 */
export async function readSegmentLayout(fs: WalFs, dir: string): Promise<SegmentLayout> {
  const { base } = await readBase(fs, dir);
  const all = await listSegments(fs, dir);
  const stale = all.filter((s) => s.last <= base);
  const retained = all.filter((s) => s.last > base);
  let expected = base + 1;
  for (const s of retained) {
    if (s.last < s.first) throw new WalFailHard("SEGMENT_INVALID", dir, `${s.name} names an empty range`, { segment: s.name });
    if (s.first !== expected) {
      if (s === retained[0]) throw new WalFailHard("FIRST_SEQ_NOT_ONE", dir, `the first retained frame is seq ${s.first} (${s.name}); base ${base} says ${expected}`, { seq: s.first, base });
      throw new WalFailHard("SEQ_GAP", dir, `${s.name} starts at ${s.first} but the previous segment ends at ${expected - 1}`, { after: expected - 1, seq: s.first, segment: s.name });
    }
    expected = s.last + 1;
  }
  return { base, retained, stale, activeFirst: expected };
}

/** Whether any segment file or base exists (steady-state evidence, §3.4). */
export async function hasSegmentState(fs: WalFs, dir: string): Promise<boolean> {
  return (await fs.list(dir)).some((n) => n === BASE_FILE || parseSegmentName(n) !== undefined);
}
