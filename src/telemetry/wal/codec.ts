/**
 * On-disk encodings of seed 001:
 *   frame    = [4-byte big-endian uint32 length][JSON payload], no newline (§3.3)
 *   safe_seq = 8-byte little-endian uint64 (§3.5; NOT big-endian)
 */
export const FRAME_HEADER_BYTES = 4;
/** A frame longer than this is treated as garbage (a torn length), never allocated. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;

/** One WAL entry: the sequence number and the event stored unchanged next to it. */
export interface WalEntry {
  seq: number;
  event: Record<string, unknown>;
}

export function encodeFrame(entry: WalEntry): Uint8Array {
  const payload = Buffer.from(JSON.stringify({ seq: entry.seq, event: entry.event }), "utf8");
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  payload.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

/** Parses a frame payload; undefined when it is not a JSON object with a positive integer seq and an object event. */
export function decodePayload(payload: Uint8Array): WalEntry | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch {
    return undefined;
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return undefined;
  const { seq, event } = doc as { seq?: unknown; event?: unknown };
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) return undefined;
  if (typeof event !== "object" || event === null || Array.isArray(event)) return undefined;
  return { seq, event: event as Record<string, unknown> };
}

export function encodeSafeSeq(seq: number): Uint8Array {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(seq), 0);
  return b;
}

/** Decodes safe_seq; undefined for any length other than 8 or a value beyond 2^53. */
export function decodeSafeSeq(bytes: Uint8Array): number | undefined {
  if (bytes.byteLength !== 8) return undefined;
  const v = Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64LE(0);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
}
