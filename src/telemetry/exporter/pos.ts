/**
 * telemetry.pos: the exporter's consumer position, 8-byte little-endian uint64
 * like telemetry.safe_seq. Meaning: every seq ≤ pos has been confirmed by the
 * sink (or dead-lettered). Written temp → fsync → rename → fsync(dir), so it
 * is the old or the new value after a crash, never torn. It is a consumer
 * marker only: WAL recovery never reads it (seed 001 S11).
 */
import { open, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { errnoCode, fsyncDir } from "../../lib/index.js";
import { decodeSafeSeq, encodeSafeSeq, walPaths } from "../wal/index.js";

export const POS_TMP = "telemetry.pos.tmp";

export type PosRead = { kind: "ok"; pos: number } | { kind: "missing" } | { kind: "corrupt"; length: number };

export async function readPos(dir: string): Promise<PosRead> {
  let raw: Uint8Array;
  try {
    raw = await readFile(walPaths(dir).pos);
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return { kind: "missing" };
    throw e;
  }
  const pos = decodeSafeSeq(raw);
  return pos === undefined ? { kind: "corrupt", length: raw.byteLength } : { kind: "ok", pos };
}

export async function writePos(dir: string, pos: number): Promise<void> {
  const tmp = join(dir, POS_TMP);
  const fh = await open(tmp, "w", 0o600);
  try {
    await fh.writeFile(encodeSafeSeq(pos));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, walPaths(dir).pos);
  await fsyncDir(dir);
}

/**
 * The position reclamation may follow (Wal's `confirmed` option): telemetry.pos,
 * or 0 when it is missing or corrupt — when in doubt, keep everything.
 */
export async function confirmedPos(dir: string): Promise<number> {
  const r = await readPos(dir);
  return r.kind === "ok" ? r.pos : 0;
}
