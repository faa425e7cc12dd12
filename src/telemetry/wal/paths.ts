import { join } from "node:path";

/** The WAL's files in its directory (seed 001; names as the original). */
export function walPaths(dir: string): { wal: string; safeSeq: string; safeSeqTmp: string; pos: string; lock: string } {
  return {
    lock: join(dir, "telemetry.lock"),
    wal: join(dir, "telemetry.wal"),
    safeSeq: join(dir, "telemetry.safe_seq"),
    safeSeqTmp: join(dir, "telemetry.safe_seq.tmp"),
    pos: join(dir, "telemetry.pos"),
  };
}

/**
 * Other persisted runtime state that makes a WAL directory "steady" (§3.4).
 *
 * Extension protocol (WS-4): every new kind of persisted runtime state that
 * implies the node has run before MUST be registered here (or passed by the
 * caller as `otherState`), or a lost safe_seq would be mistaken for a first
 * run. telemetry.pos is deliberately NOT listed: it is a consumer marker and
 * never evidence for recovery (S11).
 */
export function defaultOtherState(dir: string): string[] {
  return [join(dir, "lock.fingerprint"), join(dir, "activation"), join(dir, "runtime.db")];
}
