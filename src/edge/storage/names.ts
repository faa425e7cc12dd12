import { SEGMENT_ID_RE } from "../types.js";
import type { SegmentId, SegmentKind } from "../types.js";
import { EdgeError } from "../errors.js";

/**
 * File names inside the segment directory. Every name is built here from a
 * validated segment id (SEGMENT_ID_RE) and a known kind — never from a path a
 * caller or a peer supplied — and every name found on disk is parsed back here
 * before the store acts on it.
 *
 *   <id>.<kind>                      a segment (kind kept durably in its name)
 *   .tmp-<id>.<kind>                 a put in progress (removed at open)
 *   .evict-<seq>.<id>.<kind>         an eviction in progress (finished or rolled back at open)
 *   evictions.log                    the eviction records, one JSON line each
 */
export const SEGMENT_KINDS: readonly SegmentKind[] = ["data", "release"];
export const EVICTION_LOG = "evictions.log";

const KIND = "(data|release)";
const HEX = "([0-9a-f]{64})";
const SEGMENT_NAME = new RegExp(`^${HEX}\\.${KIND}$`);
const TEMP_NAME = /^\.tmp-/;
const EVICT_NAME = new RegExp(`^\\.evict-([1-9][0-9]{0,15})\\.${HEX}\\.${KIND}$`);

export function isSegmentKind(k: unknown): k is SegmentKind {
  return k === "data" || k === "release";
}

/** Throws unless `id` is 64 lowercase hex characters: the only ids a file name is ever built from. */
export function checkSegmentId(id: string): SegmentId {
  if (typeof id !== "string" || !SEGMENT_ID_RE.test(id)) {
    throw new EdgeError("SEGMENT_MISSING", `not a segment id: ${JSON.stringify(String(id).slice(0, 80))} (expected 64 lowercase hex characters, the SHA-256 of the bytes)`);
  }
  return id;
}

export function segmentName(id: SegmentId, kind: SegmentKind): string {
  return `${checkSegmentId(id)}.${kind}`;
}

export function tempName(id: SegmentId, kind: SegmentKind): string {
  return `.tmp-${segmentName(id, kind)}`;
}

export function evictName(seq: number, id: SegmentId, kind: SegmentKind): string {
  return `.evict-${seq}.${segmentName(id, kind)}`;
}

export type ParsedName =
  | { type: "segment"; id: SegmentId; kind: SegmentKind }
  | { type: "temp" }
  | { type: "evict"; seq: number; id: SegmentId; kind: SegmentKind }
  | { type: "log" }
  | { type: "other" };

export function parseName(name: string): ParsedName {
  if (name === EVICTION_LOG) return { type: "log" };
  const seg = SEGMENT_NAME.exec(name);
  if (seg) return { type: "segment", id: seg[1] as string, kind: seg[2] as SegmentKind };
  const ev = EVICT_NAME.exec(name);
  if (ev) return { type: "evict", seq: Number(ev[1]), id: ev[2] as string, kind: ev[3] as SegmentKind };
  if (TEMP_NAME.test(name)) return { type: "temp" };
  return { type: "other" };
}
