import { mkdir, readdir, writeFile } from "node:fs/promises";
import { release } from "node:os";
import { join, resolve } from "node:path";
import { ExitCodes, RUNTIME_VERSION, errnoCode, writeFileAtomic } from "../lib/index.js";
import { removeWorkDir, runCellSteps } from "./cell.js";
import type { CellHooks, CellReport } from "./cell.js";
import { CellLog, elapsed } from "./log.js";
import type { Progress } from "./log.js";
import { LOOP_IMAGE_BYTES, LoopSetupError, probeLoop, setupLoop } from "./loop.js";
import type { LoopFs, LoopMount } from "./loop.js";
import { detectFsType, dmesgSnapshot, fsSegment, goArch, renderDmesg } from "./platform.js";

export const FS_CELL_MODES = ["auto", "ext4", "xfs", "all"] as const;
export type FsCellsMode = (typeof FS_CELL_MODES)[number];

export interface PortabilityOptions {
  /** Evidence root: cells go to `<out>/<arch>/<fs>/run-<N>/`. */
  out: string;
  iterations: number;
  seed: number;
  fsCells: FsCellsMode;
  /** The reproducing command line, written to cmd.txt. */
  command: string;
  progress?: Progress;
  hooks?: CellHooks;
  /** Override for tests: the sparse image size of loop cells. */
  loopImageBytes?: number;
}

export type CellStatus = "PASS" | "FAIL" | "SKIPPED";

export interface CellOutcome {
  cell: string;
  arch: string;
  fs: string;
  device: "volume" | "loop";
  status: CellStatus;
  reason?: string;
  run_n?: number;
  run_dir?: string;
  fs_type?: string;
  self_tests?: { passed: number; total: number };
  iterations?: { passed: number; total: number };
  rename_atomic?: string;
  violation_codes?: string[];
  fail_hard_causes: string[];
  teardown?: string[];
  ms: number;
}

export interface PortabilitySummary {
  ok: boolean;
  exit_code: 0 | 1 | 5;
  seed: number;
  iterations: number;
  fs_cells: FsCellsMode;
  arch: string;
  out: string;
  command: string;
  cells: CellOutcome[];
  ms: number;
}

interface CellPlan {
  fs: string;
  device: "volume" | "loop";
  loopFs?: LoopFs;
}

/**
 * Which cells a mode asks for, given the file system of the --out volume:
 * - auto: the volume's own cell, plus a loop-device cell for each seed-002
 *   file system (ext4, xfs) the volume is not;
 * - ext4 / xfs: that file system only (the volume if it is one, else a loop cell);
 * - all: the volume's cell plus a loop cell for ext4 and for xfs, even when the
 *   volume is one of them (a freshly made file system with default options).
 */
export function planCells(mode: FsCellsMode, native: string): CellPlan[] {
  const volume: CellPlan = { fs: native, device: "volume" };
  const loop = (fs: LoopFs): CellPlan => ({ fs, device: "loop", loopFs: fs });
  switch (mode) {
    case "ext4":
    case "xfs":
      return [native === mode ? volume : loop(mode)];
    case "all":
      return [volume, loop("ext4"), loop("xfs")];
    case "auto":
      return [volume, ...(["ext4", "xfs"] as const).filter((fs) => fs !== native).map(loop)];
  }
}

/** Claims `<base>/run-<N>` with N the next free number (mkdir without -p: two concurrent runs never share one). */
export async function claimRunDir(base: string): Promise<{ runN: number; runDir: string }> {
  await mkdir(base, { recursive: true });
  const taken = (await readdir(base)).map((n) => /^run-([0-9]+)$/.exec(n)?.[1]).filter((x): x is string => x !== undefined).map(Number);
  for (let n = Math.max(0, ...taken) + 1; ; n++) {
    const runDir = join(base, `run-${n}`);
    try {
      await mkdir(runDir);
      return { runN: n, runDir };
    } catch (e) {
      if (errnoCode(e) !== "EEXIST") throw e;
    }
  }
}

/**
 * `autonomy lab portability`: seed 002's core invariant matrix, for the cells
 * this machine can provide. Each cell runs the four steps and leaves
 * `cmd.txt`, `dmesg.txt`, `autonomy.log` and `wal_verify.json` in its run
 * directory. Exit code: 0 when at least one cell ran and every cell that ran
 * passed; 5 when a WAL fail-hard cause appeared in any cell; else 1.
 */
export async function runPortability(o: PortabilityOptions): Promise<PortabilitySummary> {
  const t0 = performance.now();
  const progress = o.progress ?? (() => undefined);
  const out = resolve(o.out);
  const arch = goArch();
  await mkdir(out, { recursive: true });
  const volumeFs = await detectFsType(out);
  const native = fsSegment(volumeFs.type);
  progress(`[lab] evidence ${out} on ${volumeFs.type} (${volumeFs.source}); arch ${arch}; seed ${o.seed}; ${o.iterations} iteration(s) per cell; --fs-cells ${o.fsCells}`);
  const cells: CellOutcome[] = [];
  for (const plan of planCells(o.fsCells, native)) cells.push(await runOne(o, out, arch, plan, progress));

  const exit_code = exitCodeFor(cells);
  return { ok: exit_code === 0, exit_code, seed: o.seed, iterations: o.iterations, fs_cells: o.fsCells, arch, out, command: o.command, cells, ms: elapsed(t0) };
}

/**
 * The release-gate rule for one invocation: 5 when any cell saw a WAL
 * fail-hard cause; 0 when at least one cell ran and every cell that ran
 * passed (SKIPPED cells neither pass nor fail); otherwise 1.
 */
export function exitCodeFor(cells: readonly Pick<CellOutcome, "status" | "fail_hard_causes">[]): 0 | 1 | 5 {
  if (cells.some((c) => c.fail_hard_causes.length > 0)) return ExitCodes.walFailHard;
  const ran = cells.filter((c) => c.status !== "SKIPPED");
  return ran.length > 0 && ran.every((c) => c.status === "PASS") ? ExitCodes.ok : ExitCodes.failure;
}

async function runOne(o: PortabilityOptions, out: string, arch: string, plan: CellPlan, progress: Progress): Promise<CellOutcome> {
  const t0 = performance.now();
  const name = `${arch}/${plan.fs}`;
  const label = plan.device === "loop" ? `${name} (loop)` : name;
  const log = new CellLog(label, progress);
  // Not root / not Linux: honestly not run. Root without what a cell needs: the cell fails, with the reason.
  const notRun = (status: "SKIPPED" | "FAIL", reason: string): CellOutcome => {
    progress(`[lab ${label}] ${status === "SKIPPED" ? "SKIPPED" : "FAIL (could not run)"}: ${reason}`);
    return { cell: name, arch, fs: plan.fs, device: plan.device, status, reason, fail_hard_causes: [], ms: elapsed(t0) };
  };

  let mount: LoopMount | undefined;
  let tools: Extract<Awaited<ReturnType<typeof probeLoop>>, { ok: true }>["tools"] | undefined;
  if (plan.loopFs) {
    const probe = await probeLoop(plan.loopFs);
    if (!probe.ok) return notRun(probe.notRun ? "SKIPPED" : "FAIL", probe.reason);
    tools = probe.tools;
  }
  const startedAt = new Date();
  const dmesgBefore = await dmesgSnapshot();
  if (plan.loopFs && tools) {
    log.step(`setting up a ${plan.loopFs} file system on a loop device`);
    try {
      mount = await setupLoop(plan.loopFs, tools, (l) => log.line(l), o.loopImageBytes ?? LOOP_IMAGE_BYTES);
    } catch (e) {
      if (e instanceof LoopSetupError) return notRun("FAIL", e.message);
      throw e;
    }
  }

  let report: CellReport | undefined;
  let runN = 0;
  let runDir = "";
  let teardown: string[] = [];
  let workDir = "";
  try {
    ({ runN, runDir } = await claimRunDir(join(out, arch, plan.fs)));
    log.step(`run ${runDir}`);
    await writeFile(join(runDir, "cmd.txt"), cmdTxt(o, label, startedAt));
    workDir = mount ? join(mount.mountPoint, "autonomy-lab") : join(runDir, ".work");
    report = await runCellSteps({
      name,
      arch,
      fs: plan.fs,
      device: plan.device,
      ...(mount ? { loop: { device: mount.device, image_bytes: o.loopImageBytes ?? LOOP_IMAGE_BYTES } } : {}),
      runN,
      runDir,
      workDir,
      seed: o.seed,
      iterations: o.iterations,
      command: o.command,
      environment: { node: process.version, autonomy: RUNTIME_VERSION, platform: `${process.platform}/${process.arch}`, kernel: release() },
      log,
      ...(o.hooks ? { hooks: o.hooks } : {}),
    });
  } finally {
    if (workDir && !mount) await removeWorkDir(workDir).catch((e: unknown) => log.line(`could not remove ${workDir}: ${String(e)}`));
    if (mount) teardown = await mount.teardown();
  }
  const dmesgAfter = await dmesgSnapshot();
  if (teardown.length > 0) report.teardown = teardown;
  await writeFile(join(runDir, "dmesg.txt"), renderDmesg(dmesgBefore, dmesgAfter, startedAt, new Date()));
  const status: CellStatus = report.pass ? "PASS" : "FAIL";
  log.step(`${status}: ${report.passed}/${report.total_iterations} iterations, ${report.steps.self_tests.passed}/${report.steps.self_tests.total} self-tests, fixture ${report.steps.fixture.pass ? "PASS" : "FAIL"}, rename ${report.rename_atomic}${report.violations.length > 0 ? `, violations: ${codes(report).join(",")}` : ""} (${elapsed(t0)} ms)`);
  await writeFileAtomic(join(runDir, "wal_verify.json"), `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(join(runDir, "autonomy.log"), log.text());
  return {
    cell: name,
    arch,
    fs: plan.fs,
    device: plan.device,
    status,
    run_n: runN,
    run_dir: runDir,
    fs_type: report.fs_type,
    self_tests: { passed: report.steps.self_tests.passed, total: report.steps.self_tests.total },
    iterations: { passed: report.passed, total: report.total_iterations },
    rename_atomic: report.rename_atomic,
    violation_codes: codes(report),
    fail_hard_causes: report.fail_hard_causes,
    ...(teardown.length > 0 ? { teardown } : {}),
    ms: elapsed(t0),
  };
}

function codes(r: CellReport): string[] {
  return [...new Set(r.violations.map((v) => v.code))];
}

function cmdTxt(o: PortabilityOptions, label: string, at: Date): string {
  return [
    o.command,
    `# cell ${label}; seed ${o.seed}; ${at.toISOString()}; autonomy ${RUNTIME_VERSION}, node ${process.version}, kernel ${release()}`,
    "# rerunning the command with the same --seed replays every crash-harness iteration exactly (results go to the next run-<N>)",
    "",
  ].join("\n");
}
