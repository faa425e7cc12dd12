/**
 * THE telemetry.pos codec (the exporter writes it, reclamation and `wal
 * inspect` read it; nothing else decodes it). Seed 001 names the file and says
 * recovery never uses it (S11); its content is ours:
 *   24 bytes = 8-byte little-endian uint64 seq (like telemetry.safe_seq)
 *              + the 16 bytes of the WAL generation it belongs to
 *    8 bytes = the format before generations: a seq of the legacy generation
 * Meaning: every seq ≤ `seq` of that generation is confirmed by the consumer.
 */
import { decodeSafeSeq, encodeSafeSeq } from "./codec.js";
import { LEGACY_GENERATION } from "./generation.js";
import type { Generation } from "./generation.js";

export interface Position {
  seq: number;
  /** The WAL generation the position belongs to (LEGACY_GENERATION for the 8-byte format). */
  generation: string;
}

export function encodePosition(p: Position): Uint8Array {
  const out = Buffer.alloc(24);
  Buffer.from(encodeSafeSeq(p.seq)).copy(out, 0);
  Buffer.from(p.generation, "hex").copy(out, 8);
  return out;
}

/** undefined for any length but 8 or 24, or a seq beyond 2^53. */
export function decodePosition(bytes: Uint8Array): Position | undefined {
  if (bytes.byteLength !== 8 && bytes.byteLength !== 24) return undefined;
  const seq = decodeSafeSeq(bytes.subarray(0, 8));
  if (seq === undefined) return undefined;
  const generation = bytes.byteLength === 8 ? LEGACY_GENERATION : Buffer.from(bytes.subarray(8, 24)).toString("hex");
  return { seq, generation };
}

/** The confirmed seq a consumer may act on in generation `g`: the position's, or 0 when it belongs to another generation (ignored, never deleted). */
export function confirmedIn(p: Position | undefined, g: Pick<Generation, "id">): number {
  return p !== undefined && p.generation === g.id ? p.seq : 0;
}
