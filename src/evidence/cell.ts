import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { WalFailHard, VERIFY_INVARIANTS, inspectWal } from "../telemetry/index.js";
import type { VerifyInvariant, WalInspection } from "../telemetry/index.js";
import { walVerifyReport } from "./report.js";
import type { RenameAtomic, ReportViolation, WalVerifyReport } from "./report.js";
import { preserve, runCrashHarness } from "./harness.js";
import type { HarnessResult } from "./harness.js";
import { elapsed } from "./log.js";
import type { CellLog } from "./log.js";
import { detectFsType } from "./platform.js";
import type { FsType } from "./platform.js";
import { SELF_TESTS, runSelfTests } from "./self-tests.js";
import type { SelfTest, SelfTestResult } from "./self-tests.js";
import { crossCheck } from "./independent.js";
import type { IndependentResult } from "./independent.js";
import { FIXTURE_ENTRIES, runFixtureVerify, runRenameCheck } from "./steps.js";
import type { FixtureResult, RenameResult } from "./steps.js";

/** Test seams: replace the self-test list, damage the step-3 fixture before it is verified, or choose the independent verifier's interpreter. */
export interface CellHooks {
  selfTests?: readonly SelfTest[];
  tamperFixture?: (dir: string) => Promise<void>;
  python?: string;
}

/** wal_verify.json of a cell: seed 002's fields first, then what this implementation adds. */
export type CellReport = WalVerifyReport & {
  cell: { name: string; device: "volume" | "loop"; work_dir: string; fs: FsType; loop?: { device: string; image_bytes: number } };
  steps: {
    self_tests: { pass: boolean; total: number; passed: number; failed: number; ms: number; checks: SelfTestResult[] };
    crash_harness: { pass: boolean; seed: number; iterations: number; passed: number; failed: number; acknowledged: number; phantoms_injected: number; ms: number };
    fixture: { pass: boolean; entries: number; committed: number; fail_hard: string | null; ms: number; independent: IndependentResult | null };
    rename: { rename_atomic: RenameAtomic; msg: string; ms: number };
  };
  fail_hard_causes: string[];
  environment: { node: string; autonomy: string; platform: string; kernel: string };
  command: string;
  duration_ms: number;
  teardown?: string[];
};

export interface CellStepsInput {
  name: string;
  arch: string;
  /** The cell's file-system name (its evidence directory); for a loop cell, what must be detected. */
  fs: string;
  device: "volume" | "loop";
  loop?: { device: string; image_bytes: number };
  runN: number;
  runDir: string;
  workDir: string;
  seed: number;
  iterations: number;
  command: string;
  environment: CellReport["environment"];
  log: CellLog;
  hooks?: CellHooks;
}

/**
 * Seed 002's four steps for one cell, in `workDir` (on the cell's file
 * system), and the wal_verify.json report. Every step runs even when an earlier
 * one failed; an exception inside a step is a STEP_ERROR violation, never an
 * aborted cell. Failing WAL images are kept under `runDir/artifacts`.
 */
export async function runCellSteps(c: CellStepsInput): Promise<CellReport> {
  const t0 = performance.now();
  const { log } = c;
  const extra: ReportViolation[] = [];
  const failHard: string[] = [];
  const invariantFailures: Partial<Record<VerifyInvariant, string>> = {};
  const stepError = (step: string, e: unknown): void => {
    if (e instanceof WalFailHard) failHard.push(e.code);
    const msg = `${step} did not complete: ${e instanceof Error ? e.message : String(e)}`;
    extra.push({ code: e instanceof WalFailHard ? e.code : "STEP_ERROR", step, msg });
    log.line(`  ERROR ${msg}`);
  };

  await mkdir(c.workDir, { recursive: true });
  const fs = await detectFsType(c.workDir);
  log.step(`work dir ${c.workDir}: ${fs.type} (${fs.source}${fs.mount_point ? `, mount ${fs.mount_point} ${fs.mount_options ?? ""} ${fs.super_options ?? ""}` : ""})`);
  if (c.device === "loop" && fs.type !== c.fs) {
    extra.push({ code: "FS_TYPE_MISMATCH", step: "cell", msg: `the loop cell's work dir is on ${fs.type}, not ${c.fs}` });
  }

  // Step 1: self-tests.
  log.step("step 1/4: self-tests (WAL R1–R5/S1–S12, lock golden, BLAKE3, JCS) on this file system");
  let checks: SelfTestResult[] = [];
  const t1 = performance.now();
  try {
    checks = await runSelfTests(join(c.workDir, "self-tests"), log, c.hooks?.selfTests ?? SELF_TESTS);
  } catch (e) {
    stepError("self_tests", e);
  }
  const selfMs = elapsed(t1);
  for (const r of checks.filter((x) => !x.pass)) {
    extra.push({ code: r.fail_hard ?? "SELF_TEST_FAILED", step: "self_tests", check: r.name, clause: r.clause, msg: `${r.name}: ${r.msg}` });
    if (r.fail_hard) failHard.push(r.fail_hard);
  }
  const selfPassed = checks.filter((x) => x.pass).length;
  log.step(`step 1/4: ${selfPassed}/${checks.length} self-tests passed (${selfMs} ms)${checks.length - selfPassed > 0 ? `; failed: ${checks.filter((x) => !x.pass).map((x) => x.name).join(", ")}` : ""}`);

  // Step 2: randomized crash harness.
  log.step(`step 2/4: crash harness, seed ${c.seed}, ${c.iterations} iteration(s)`);
  let harness: HarnessResult = { iterations: [], invariantFailures: {}, failHard: [], acknowledged: 0, phantomsInjected: 0, ms: 0 };
  try {
    harness = await runCrashHarness({ workDir: join(c.workDir, "crash-harness"), seed: c.seed, iterations: c.iterations, log, preserveDir: join(c.runDir, "artifacts") });
  } catch (e) {
    stepError("crash_harness", e);
  }
  if (harness.iterations.length < c.iterations) extra.push({ code: "STEP_ERROR", step: "crash_harness", msg: `${harness.iterations.length} of ${c.iterations} iterations ran` });
  for (const it of harness.iterations) extra.push(...it.violations);
  Object.assign(invariantFailures, harness.invariantFailures);
  failHard.push(...harness.failHard);
  const hFailed = harness.iterations.filter((x) => !x.pass).length;
  log.step(`step 2/4: ${harness.iterations.length - hFailed}/${harness.iterations.length} iterations passed; ${harness.acknowledged} acknowledged, ${harness.phantomsInjected} phantom frame(s) injected (${harness.ms} ms)`);

  // Step 3: known-good fixture, verified read-only.
  log.step("step 3/4: known-good 5-entry WAL fixture, verified read-only by inspectWal and by the independent scripts/wal_verify.py");
  let fixture: FixtureResult | undefined;
  try {
    fixture = await runFixtureVerify(join(c.workDir, "fixture"), log, c.hooks?.tamperFixture);
  } catch (e) {
    stepError("fixture", e);
    for (const k of VERIFY_INVARIANTS) invariantFailures[k] ??= "step 3 did not complete; not verified";
  }
  const inspection: WalInspection = fixture?.inspection ?? inspectWal(new Uint8Array(0), undefined);
  if (fixture) {
    if (inspection.fail_hard) failHard.push(inspection.fail_hard);
    if (fixture.inspection.violations.length > 0) await preserve(fixture.dir, join(c.runDir, "artifacts", "fixture"), log);
    if (fixture.inspection.violations.length === 0 && (fixture.committed !== FIXTURE_ENTRIES || inspection.safe_seq !== FIXTURE_ENTRIES)) {
      extra.push({ code: "FIXTURE_INCOMPLETE", step: "fixture", msg: `fixture has ${fixture.committed} committed entries and safe_seq ${String(inspection.safe_seq)}, want ${FIXTURE_ENTRIES} and ${FIXTURE_ENTRIES}` });
    }
  }
  // The same fixture through scripts/wal_verify.py (seed 002's independent verifier): the verdicts must agree.
  let independent: IndependentResult | null = null;
  if (fixture) {
    independent = await crossCheck(fixture.dir, inspection, { arch: c.arch, fs: fs.type, ...(c.hooks?.python ? { python: c.hooks.python } : {}) });
    log.line(`  wal_verify.py (independent, ${independent.command.slice(0, 2).join(" ")}): exit ${String(independent.exit_code)}, ${independent.agree ? "agrees with inspect" : `DISAGREES: ${independent.differences.join("; ")}`}`);
    if (!independent.agree) {
      extra.push({ code: independent.report ? "VERIFIERS_DISAGREE" : "INDEPENDENT_VERIFIER_FAILED", step: "fixture", msg: independent.differences.join("; ") });
      if (fixture.inspection.violations.length === 0) await preserve(fixture.dir, join(c.runDir, "artifacts", "fixture"), log);
    }
  }
  const fixturePass = fixture !== undefined && inspection.violations.length === 0 && independent?.agree === true;
  log.step(`step 3/4: ${fixturePass ? "PASS" : "FAIL"} ${[...inspection.violations.map((v) => v.code), ...(independent && !independent.agree ? ["VERIFIERS"] : [])].join(",")}`.trimEnd());

  // Step 4: atomic rename.
  log.step("step 4/4: atomic rename check");
  let rename: RenameResult = { rename_atomic: "FAIL", msg: "not run", ms: 0 };
  try {
    rename = await runRenameCheck(join(c.workDir, "rename"), log);
  } catch (e) {
    stepError("rename", e);
    rename = { rename_atomic: "FAIL", msg: `did not complete: ${e instanceof Error ? e.message : String(e)}`, ms: 0 };
  }
  if (rename.rename_atomic === "FAIL" && !extra.some((v) => v.step === "rename")) extra.push({ code: "RENAME_NOT_ATOMIC", step: "rename", msg: rename.msg });
  log.step(`step 4/4: rename_atomic=${rename.rename_atomic} (${rename.ms} ms)`);

  const base = walVerifyReport(inspection, {
    arch: c.arch,
    fs: fs.type,
    run: c.runN,
    seed: c.seed,
    iterations: harness.iterations,
    renameAtomic: rename.rename_atomic,
    violations: extra,
    invariantFailures,
  });
  return {
    ...base,
    cell: { name: c.name, device: c.device, work_dir: c.workDir, fs, ...(c.loop ? { loop: c.loop } : {}) },
    steps: {
      self_tests: { pass: checks.length > 0 && selfPassed === checks.length, total: checks.length, passed: selfPassed, failed: checks.length - selfPassed, ms: selfMs, checks },
      crash_harness: { pass: harness.iterations.length === c.iterations && hFailed === 0, seed: c.seed, iterations: harness.iterations.length, passed: harness.iterations.length - hFailed, failed: hFailed, acknowledged: harness.acknowledged, phantoms_injected: harness.phantomsInjected, ms: harness.ms },
      fixture: { pass: fixturePass, entries: fixture?.acknowledged.length ?? 0, committed: fixture?.committed ?? 0, fail_hard: inspection.fail_hard, ms: fixture?.ms ?? 0, independent },
      rename,
    },
    fail_hard_causes: [...new Set(failHard)],
    environment: c.environment,
    command: c.command,
    duration_ms: elapsed(t0),
  };
}

/** Removes a volume cell's scratch directory (a loop cell's goes with its file system). */
export async function removeWorkDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
