/**
 * telemetry.pos: the exporter's consumer position. Every seq ≤ pos of the WAL
 * generation it names has been confirmed by the sink (or dead-lettered).
 * Encoded by the one codec, wal/position.ts (24 bytes: seq + generation; the
 * 8-byte format before generations is still read, as the legacy generation).
 * Written temp → fsync → rename → fsync(dir), so it is the old or the new
 * value after a crash, never torn. It is a consumer marker only: WAL recovery
 * never reads or changes it (seed 001 S11); a position of another generation
 * is ignored here, never deleted.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { errnoCode, replaceFileDurably } from "../../lib/index.js";
import { confirmedIn, decodePosition, encodePosition, nodeWalFs, readGeneration, removeStaleTemp, walPaths } from "../wal/index.js";
import type { Position } from "../wal/index.js";

export const POS_TMP = "telemetry.pos.tmp";

export type PosRead = { kind: "ok"; pos: number; generation: string } | { kind: "missing" } | { kind: "corrupt"; length: number };

export async function readPos(dir: string): Promise<PosRead> {
  let raw: Uint8Array;
  try {
    raw = await readFile(walPaths(dir).pos);
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return { kind: "missing" };
    throw e;
  }
  const p = decodePosition(raw);
  return p === undefined ? { kind: "corrupt", length: raw.byteLength } : { kind: "ok", pos: p.seq, generation: p.generation };
}

/** Through the WAL's file system (owner-only files) and the one durable-replace helper, like the safe point. */
export async function writePos(dir: string, pos: Position): Promise<void> {
  await replaceFileDurably(walPaths(dir).pos, join(dir, POS_TMP), encodePosition(pos), nodeWalFs);
}

/**
 * WS-3's rule ({@link removeStaleTemp}) applied to the position's temp: a
 * `telemetry.pos.tmp` left by a drain killed mid-write. Called with the
 * exporter's lock held.
 */
export async function removeStalePosTmp(dir: string): Promise<void> {
  await removeStaleTemp(nodeWalFs, walPaths(dir).pos, join(dir, POS_TMP));
}

/**
 * The position reclamation may follow (Wal's `confirmed` option): telemetry.pos
 * when it belongs to the WAL's current generation, else 0 — a missing, corrupt
 * or other generation's position reclaims nothing (when in doubt, keep everything).
 */
export async function confirmedPos(dir: string): Promise<number> {
  const r = await readPos(dir);
  if (r.kind !== "ok") return 0;
  return confirmedIn({ seq: r.pos, generation: r.generation }, await readGeneration(nodeWalFs, dir));
}
