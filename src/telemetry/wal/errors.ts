import { AutonomyError, ExitCodes } from "../../lib/index.js";

/**
 * Fail-hard causes (seed 001 §3.3–§3.5 and DESIGN §6). Stable strings: operators
 * and the portability evidence match on them.
 */
export const WAL_FAIL_HARD_CAUSES = [
  "FIRST_SEQ_NOT_ONE",
  "SEQ_GAP",
  "SAFESEQ_GT_MAXSEQ",
  "SAFESEQ_NOT_FOUND",
  "WAL_CORRUPT_INVALID_JSON",
  "SAFESEQ_CORRUPT",
  "SAFESEQ_MISSING",
  // Bounded-disk extension (docs/wal.md "Bounded disk: segments"):
  "SEGMENT_INVALID",
  "WAL_BASE_CORRUPT",
  // Generations (docs/wal.md "Generations"):
  "WAL_GENERATION_CORRUPT",
] as const;
export type WalFailHardCause = (typeof WAL_FAIL_HARD_CAUSES)[number];

/** Errors that are not recovery verdicts: the WAL is fine, the operation is not. */
export const WAL_ERROR_CODES = ["WAL_DISK_FULL", "WAL_IO", "WAL_POISONED", "WAL_CLOSED", "WAL_ENTRY_INVALID", "WAL_LOCKED", "WAL_DIR_MISSING", "WAL_BESIDE_NOT_WRITABLE", "WAL_OVERRIDE_AMBIGUOUS"] as const;
export type WalErrorCode = (typeof WAL_ERROR_CODES)[number];

const HINTS: Readonly<Record<WalFailHardCause, string>> = {
  FIRST_SEQ_NOT_ONE: "the WAL does not start at seq 1: it was truncated at the front or replaced. Preserve the directory for analysis; do not delete it to make the error go away",
  SEQ_GAP: "committed frames are missing (a gap in seq): storage lost data. Preserve the directory; restore from backup or reset deliberately (AUTONOMYOPS_WAL_OPERATOR_RESET=1 applies only to an empty WAL)",
  SAFESEQ_GT_MAXSEQ: "the safe point is ahead of the WAL: frames were lost or the files were reordered. Preserve the directory for analysis",
  SAFESEQ_NOT_FOUND: "the frame the safe point names is missing: storage lost committed data. Preserve the directory for analysis",
  WAL_CORRUPT_INVALID_JSON: "a committed frame is structurally complete but its JSON is corrupt: storage corruption. Preserve the directory for analysis",
  SAFESEQ_CORRUPT: "telemetry.safe_seq is not 8 bytes: it is corrupt. Preserve the directory; never hand-edit the safe point",
  SEGMENT_INVALID: "a sealed segment does not hold exactly the frames its name says, or lies beyond the safe point: storage lost or changed committed data. Preserve the directory for analysis",
  WAL_BASE_CORRUPT: "telemetry.wal.base has the wrong length or fails its checksum: it is corrupt. Preserve the directory; never hand-edit it",
  WAL_GENERATION_CORRUPT: "the generation file beside the WAL directory (<dir>.generation) is not a generation record: it is corrupt. Preserve it; never hand-edit it. Removing it makes the WAL the legacy generation: positions of other generations are then ignored and telemetry is exported again from seq 1",
  SAFESEQ_MISSING: "the node has state but telemetry.safe_seq is missing. If this node ran a WAL version without safe points, set AUTONOMYOPS_WAL_LEGACY_UPGRADE=1 once; if the WAL is empty and you mean to start over, set AUTONOMYOPS_WAL_OPERATOR_RESET=1",
};

/**
 * Recovery refused to open the WAL (exit 5). Carries the stable cause and the
 * directory; logged once as a structured WAL_RECOVERY_FAIL_HARD record.
 */
export class WalFailHard extends AutonomyError<WalFailHardCause> {
  readonly dir: string;
  constructor(cause: WalFailHardCause, dir: string, message: string, details: Record<string, unknown> = {}) {
    super(cause, `WAL_RECOVERY_FAIL_HARD ${cause} in ${dir}: ${message}`, { hint: HINTS[cause], exitCode: ExitCodes.walFailHard, details: { cause, dir, ...details } });
    this.dir = dir;
  }
}

export class WalError extends AutonomyError<WalErrorCode> {
  constructor(code: WalErrorCode, message: string, hint: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, { hint, exitCode: ExitCodes.failure, ...opts });
  }
}
