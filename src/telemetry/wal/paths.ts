import { join } from "node:path";
import { besideWalDir } from "./beside.js";

/**
 * The WAL's files in its directory (seed 001; names as the original), and its
 * lock, which lies BESIDE the directory (`<dir>.lock`): the seed does not name
 * it, and a seed-exact directory holds only the files the seed names.
 */
export function walPaths(dir: string): { wal: string; safeSeq: string; safeSeqTmp: string; pos: string; readonly lock: string } {
  return {
    // A getter: canonicalising the directory is a realpath walk (blocking syscalls), and
    // every commit's safe-point write asks for walPaths; only opening the WAL needs the lock.
    get lock() {
      return besideWalDir(dir, "lock");
    },
    wal: join(dir, "telemetry.wal"),
    safeSeq: join(dir, "telemetry.safe_seq"),
    safeSeqTmp: join(dir, "telemetry.safe_seq.tmp"),
    pos: join(dir, "telemetry.pos"),
  };
}

/**
 * The three names seed 001 §3.4 (`otherStateExists`) checks inside the WAL
 * directory itself; part of the seed's format, so a bare WAL directory is
 * judged as any seed-001 implementation would. This is NOT where node state
 * is registered: the node's steady-state list is src/node/layout.ts
 * (`walSteadyStateEvidence`, WS-4 extension protocol), which callers pass as
 * `otherState`. telemetry.pos is deliberately NOT listed: it is a consumer
 * marker and never evidence for recovery (S11).
 */
export function defaultOtherState(dir: string): string[] {
  return [join(dir, "lock.fingerprint"), join(dir, "activation"), join(dir, "runtime.db")];
}
