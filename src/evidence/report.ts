import type { VerifyInvariant, WalInspection } from "../telemetry/index.js";

/** Seed 002's step-4 verdict; NOT_RUN when the report covers one directory only (`autonomy wal verify`). */
export type RenameAtomic = "PASS" | "FAIL" | "NOT_RUN";

/**
 * One entry of `violations`. Seed 002: "a violations entry always includes a
 * code field". WAL invariant violations carry the invariant too; evidence
 * steps add where they were seen (step, iteration, check).
 */
export interface ReportViolation {
  /** A WAL cause (`Violation["code"]`) or an evidence code such as RENAME_NOT_ATOMIC. */
  code: string;
  msg: string;
  invariant?: VerifyInvariant;
  [key: string]: unknown;
}

/** One crash-harness iteration as recorded in the report; the harness adds its own fields. */
export interface ReportIteration {
  iteration: number;
  pass: boolean;
  [key: string]: unknown;
}

/** seed 002's wal_verify.json (field order as the seed), plus a `wal` summary of the inspected image. */
export interface WalVerifyReport {
  timestamp: string;
  seed: number | null;
  arch: string;
  fs_type: string;
  total_iterations: number;
  passed: number;
  failed: number;
  pass: boolean;
  rename_atomic: RenameAtomic;
  run_n: number;
  invariants: Record<VerifyInvariant, { pass: boolean; msg: string }>;
  violations: ReportViolation[];
  iterations: ReportIteration[];
  wal: { frames: number; safe_seq: number | null; max_seq: number; bytes: number; torn_tail_bytes: number };
}

export interface WalVerifyReportOptions {
  arch: string;
  fs: string;
  run: number;
  /** The crash harness's PRNG seed; null when no harness ran. */
  seed?: number | null;
  /** Crash-harness iterations (seed 002 step 2); none for a single-directory verify. */
  iterations?: readonly ReportIteration[];
  renameAtomic?: RenameAtomic;
  /** Violations found outside the inspected image (harness iterations, self-tests, rename check). */
  violations?: readonly ReportViolation[];
  /** Invariant failures seen elsewhere (e.g. a harness iteration's recovered image), AND-ed into the block. */
  invariantFailures?: Partial<Record<VerifyInvariant, string>>;
  now?: Date;
}

/**
 * Builds seed 002's wal_verify.json from a read-only inspection of one WAL
 * image (`inspectWal`), optionally with the crash harness's iterations and the
 * rename check. `pass` is true only when no violation was found anywhere, no
 * iteration failed, and the rename check did not fail. Shared by
 * `autonomy wal verify` (one directory) and `autonomy lab portability` (a cell).
 * It lives in evidence, not telemetry: it is seed 002's report format, and
 * the WAL domain only supplies the inspection it summarises.
 */
export function walVerifyReport(i: WalInspection, o: WalVerifyReportOptions): WalVerifyReport {
  const iterations = [...(o.iterations ?? [])];
  const failed = iterations.filter((it) => !it.pass).length;
  const violations: ReportViolation[] = [...i.violations.map((v) => ({ ...v })), ...(o.violations ?? [])];
  const rename = o.renameAtomic ?? "NOT_RUN";
  const invariants = { ...i.invariants };
  for (const [k, msg] of Object.entries(o.invariantFailures ?? {}) as [VerifyInvariant, string | undefined][]) {
    if (msg === undefined) continue;
    const cur = invariants[k];
    invariants[k] = { pass: false, msg: cur.pass ? msg : `${cur.msg}; ${msg}` };
  }
  const pass = violations.length === 0 && failed === 0 && rename !== "FAIL" && Object.values(invariants).every((v) => v.pass);
  return {
    timestamp: (o.now ?? new Date()).toISOString().replace(/\.\d{3}Z$/, "Z"),
    seed: o.seed ?? null,
    arch: o.arch,
    fs_type: o.fs,
    total_iterations: iterations.length,
    passed: iterations.length - failed,
    failed,
    pass,
    rename_atomic: rename,
    run_n: o.run,
    invariants,
    violations,
    iterations,
    wal: { frames: i.frames.length, safe_seq: i.safe_seq, max_seq: i.max_seq, bytes: i.wal_bytes, torn_tail_bytes: i.torn_tail_bytes },
  };
}
