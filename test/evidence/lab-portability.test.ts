// `autonomy lab portability` (seed 002's core invariant matrix) through the real binary
// (`node bin/autonomy.js`; run `npm run build` first), plus its report builder and a
// deliberately broken cell through the internal functions. The cells on loop devices need
// root and loop devices: without them these tests fail naming what is missing, unless
// AUTONOMY_TEST_SKIP names it (test/helpers/needs.ts). A cell that could not run is never
// a pass.
import { existsSync } from "node:fs";
import { mkdtemp, open, readFile, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { goArch, runPortability, walVerifyReport } from "../../src/evidence/index.js";
import type { PortabilitySummary } from "../../src/evidence/index.js";
import { runCellSteps } from "../../src/evidence/cell.js";
import type { CellReport, CellStepsInput } from "../../src/evidence/cell.js";
import { GOLDEN_FINGERPRINT, GOLDEN_LOCK_JSON, GOLDEN_PAYLOAD } from "../../src/evidence/golden.js";
import { iterationRng } from "../../src/evidence/harness.js";
import { CellLog } from "../../src/evidence/log.js";
import { fsSegment, parseMountinfoLine } from "../../src/evidence/platform.js";
import { claimRunDir, exitCodeFor, planCells } from "../../src/evidence/portability.js";
import type { SelfTest } from "../../src/evidence/self-tests.js";
import { encodeFrame, inspectWal, walPaths } from "../../src/telemetry/index.js";
import { renderSummary } from "../../src/cli/commands/lab.js";
import { describeRun, runCli, runJson } from "../helpers/cli.js";
import { needs } from "../helpers/needs.js";

const DIST_LAB = fileURLToPath(new URL("../../dist/cli/commands/lab.js", import.meta.url));
const SEED_002_KEYS = ["timestamp", "seed", "arch", "fs_type", "total_iterations", "passed", "failed", "pass", "rename_atomic", "run_n", "invariants", "violations", "iterations"];
const INVARIANTS = ["R1_FIRST_SEQ_IS_ONE", "R2_SEQ_CONTIGUOUS", "R3_SAFESEQ_LE_MAXSEQ", "R4_SAFESEQ_FRAME_EXISTS", "R5_NO_PHANTOMS", "NO_JSON_CORRUPTION"];
const EVIDENCE_FILES = ["autonomy.log", "cmd.txt", "dmesg.txt", "wal_verify.json"];
/** What the ext4 and xfs cells on loop devices need. */
const loopCells = needs("root", "loop-devices", "util-linux", "mkfs.ext4", "mkfs.xfs");

let root = "";
beforeAll(async () => {
  if (!existsSync(DIST_LAB)) throw new Error("dist/ is missing: run `npm run build` before this suite (it drives the real binary)");
  root = await mkdtemp(join(tmpdir(), "lab-portability-"));
});
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

async function readReport(dir: string): Promise<CellReport> {
  return JSON.parse(await readFile(join(dir, "wal_verify.json"), "utf8")) as CellReport;
}

// Step 3 runs scripts/wal_verify.py: the cells need python3.
needs("python3").describe("autonomy lab portability (real binary)", () => {
  loopCells.it("writes the evidence tree for every cell, passes, records the seed, and numbers a second run run-2 with the same iterations", async () => {
    const out = join(root, "evidence");
    const args = ["lab", "portability", "--iterations", "5", "--out", out];
    const r = await runCli(args, { timeoutMs: 60_000 });
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout).toMatch(/^cell\s+result\s+detail$/m);
    expect(r.stdout).toMatch(new RegExp(`^${goArch()}/\\S+\\s+PASS\\s+run-1,`, "m"));
    expect(r.stderr).toContain("step 4/4: rename_atomic=PASS");

    // Every cell ran (none skipped: this is root with loop devices) and left run-1 with the four files.
    expect(r.stdout).not.toMatch(/SKIPPED|could not run/);
    const arch = goArch();
    const cells = await readdir(join(out, arch));
    expect(cells.sort()).toEqual(expect.arrayContaining(["ext4", "xfs"]));
    let seed: number | undefined;
    const firstIterations: Record<string, unknown[]> = {};
    for (const fs of cells) {
      const run = join(out, arch, fs, "run-1");
      expect((await readdir(run)).sort()).toEqual(EVIDENCE_FILES);
      const report = await readReport(run);
      expect(Object.keys(report).slice(0, SEED_002_KEYS.length)).toEqual(SEED_002_KEYS);
      expect(report).toMatchObject({ arch, fs_type: fs, total_iterations: 5, passed: 5, failed: 0, pass: true, rename_atomic: "PASS", run_n: 1, violations: [] });
      for (const k of INVARIANTS) expect(report.invariants[k as keyof CellReport["invariants"]]).toEqual({ pass: true, msg: "ok" });
      expect(report.iterations).toHaveLength(5);
      for (const it of report.iterations) {
        expect(it.pass).toBe(true);
        expect(it.entries).toBeGreaterThanOrEqual(1);
        expect(it.entries).toBeLessThanOrEqual(10);
        expect(it.safe_seq_on_disk).toBe(it.entries);
      }
      expect(report.steps.self_tests.failed).toBe(0);
      expect(report.steps.self_tests.checks.map((c) => c.name)).toEqual(expect.arrayContaining(["R1_FIRST_SEQ_NOT_ONE", "R2_SEQ_GAP", "R3_SAFESEQ_GT_MAXSEQ", "R4_SAFESEQ_NOT_FOUND", "S3_R5_NO_PHANTOMS", "LOCK_GOLDEN_FINGERPRINT", "BLAKE3_KNOWN_ANSWERS", "JCS_RFC8785"]));
      expect(report.steps.fixture).toMatchObject({ pass: true, entries: 5, committed: 5, independent: { agree: true, exit_code: 0, differences: [] } });
      expect(report.steps.fixture.independent?.report).toMatchObject({ verifier: "scripts/wal_verify.py", pass: true, layout: "seed-exact" });
      expect(report.wal).toMatchObject({ frames: 5, safe_seq: 5 });

      const cmd = await readFile(join(run, "cmd.txt"), "utf8");
      expect(typeof report.seed).toBe("number");
      expect(cmd.split("\n")[0]).toBe(`autonomy lab portability --out ${out} --iterations 5 --seed ${report.seed} --fs-cells auto`);
      seed ??= report.seed ?? undefined;
      expect(report.seed).toBe(seed); // one seed for every cell of a run
      expect(await readFile(join(run, "dmesg.txt"), "utf8")).toMatch(/=== before ===[\s\S]*=== after ===/);
      const log = await readFile(join(run, "autonomy.log"), "utf8");
      expect(log).toContain("PASS R1_FIRST_SEQ_NOT_ONE");
      expect(log).toContain('"msg":"WAL_RECOVERY_FAIL_HARD"'); // the expected fail-hards of step 1 are logged
      expect(log).toMatch(/iteration 4: N=\d+ phantoms=\d+ torn_tail=(true|false) -> PASS/);
      expect(existsSync(join(run, ".work"))).toBe(false); // scratch removed
      firstIterations[fs] = report.iterations.map(({ iteration, entries, phantoms, torn_tail }) => ({ iteration, entries, phantoms, torn_tail }));
    }

    // Second run, replaying the seed: run-2 everywhere, the same iterations.
    const again = await runJson<PortabilitySummary>([...args, "--seed", String(seed)], { timeoutMs: 60_000 });
    expect(again.code, describeRun(again)).toBe(0);
    expect(again.json).toMatchObject({ ok: true, exit_code: 0, seed, iterations: 5, arch });
    expect(again.json.cells.map((c) => c.fs).sort()).toEqual([...cells].sort());
    for (const c of again.json.cells) {
      expect(c).toMatchObject({ status: "PASS", run_n: 2, run_dir: join(out, arch, c.fs, "run-2") });
      const report = await readReport(join(out, arch, c.fs, "run-2"));
      expect(report.run_n).toBe(2);
      expect(report.iterations.map(({ iteration, entries, phantoms, torn_tail }) => ({ iteration, entries, phantoms, torn_tail }))).toEqual(firstIterations[c.fs]);
    }
  }, 60_000);

  loopCells.it("--fs-cells all runs the volume cell and both loop cells (ext4, xfs), every one passing", async () => {
    const out = join(root, "all-cells");
    const r = await runJson<PortabilitySummary>(["lab", "portability", "--iterations", "2", "--fs-cells", "all", "--out", out], { timeoutMs: 60_000 });
    expect(r.code, describeRun(r)).toBe(0);
    const arch = goArch();
    expect(r.json.cells.map((c) => `${c.cell}:${c.device}:${c.status}`).slice(1)).toEqual([`${arch}/ext4:loop:PASS`, `${arch}/xfs:loop:PASS`]);
    expect(r.json.cells[0]).toMatchObject({ device: "volume", status: "PASS" });
    for (const c of r.json.cells.filter((x) => x.device === "loop")) {
      expect(c.fs_type).toBe(c.fs); // the cell really ran on the file system it names
      expect(c.teardown).toBeUndefined(); // unmounted and detached cleanly
    }
  }, 60_000);

  loopCells.it("a loop cell that cannot be set up as root FAILS with its reason (exit 1), never SKIPPED", async () => {
    // mkfs.xfs refuses a file system under 300 MB: a real setup failure, not a simulated one.
    const s = await runPortability({ out: join(root, "unbuildable"), iterations: 1, seed: 1, fsCells: "all", command: "test", loopImageBytes: 16 * 1024 * 1024 });
    const xfs = s.cells.find((c) => c.fs === "xfs" && c.device === "loop");
    expect(xfs).toMatchObject({ status: "FAIL", fail_hard_causes: [] });
    expect(xfs?.reason).toMatch(/^mkfs\.xfs failed: /);
    expect(xfs?.run_n).toBeUndefined(); // it never ran: no evidence directory claimed
    expect(s.cells.some((c) => c.status === "SKIPPED")).toBe(false);
    expect(s).toMatchObject({ ok: false, exit_code: 1 });
    // The table says so too: FAIL, with the reason, never SKIPPED(…).
    const table = renderSummary(s);
    expect(table).toMatch(new RegExp(`^${goArch()}/xfs \\(loop\\)\\s+FAIL\\s+could not run: mkfs\\.xfs failed: `, "m"));
    expect(table).toMatch(/^FAIL: a cell failed/m);
  }, 60_000);

  it("rejects bad flags with a usage error (exit 2)", async () => {
    for (const bad of [["--iterations", "0"], ["--fs-cells", "zfs"], ["--seed", "1.5"]]) {
      const r = await runCli(["lab", "portability", "--out", join(root, "unused"), ...bad]);
      expect(r.code, describeRun(r)).toBe(2);
      expect(r.stderr).toContain(`option '${bad[0]} `);
      expect(r.stderr).toMatch(/^hint: run `autonomy lab portability --help`/m);
    }
    expect(existsSync(join(root, "unused"))).toBe(false);
  });
});

// ------------------------------------------------------------------ report builder

describe("walVerifyReport (seed 002 wal_verify.json)", () => {
  const clean = (): ReturnType<typeof inspectWal> => inspectWal(Buffer.concat([1, 2].map((seq) => encodeFrame({ seq, event: {} }))), Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]));

  it("has the seed's fields in its order and passes a clean cell", () => {
    const r = walVerifyReport(clean(), { arch: "amd64", fs: "ext4", run: 3, seed: 42, renameAtomic: "PASS", iterations: [{ iteration: 0, pass: true }, { iteration: 1, pass: true }], now: new Date("2026-03-03T00:00:00.123Z") });
    expect(Object.keys(r).slice(0, SEED_002_KEYS.length)).toEqual(SEED_002_KEYS);
    expect(r).toMatchObject({ timestamp: "2026-03-03T00:00:00Z", seed: 42, arch: "amd64", fs_type: "ext4", total_iterations: 2, passed: 2, failed: 0, pass: true, rename_atomic: "PASS", run_n: 3, violations: [] });
    expect(Object.keys(r.invariants)).toEqual(INVARIANTS);
  });

  it("fails on a failed iteration, a failed rename, an extra violation or an invariant failure seen elsewhere", () => {
    const base = { arch: "amd64", fs: "xfs", run: 1, seed: 1 };
    const failedIt = walVerifyReport(clean(), { ...base, iterations: [{ iteration: 0, pass: true }, { iteration: 1, pass: false }] });
    expect(failedIt).toMatchObject({ pass: false, passed: 1, failed: 1 });
    expect(walVerifyReport(clean(), { ...base, renameAtomic: "FAIL" }).pass).toBe(false);
    const extra = walVerifyReport(clean(), { ...base, violations: [{ code: "SELF_TEST_FAILED", msg: "x" }] });
    expect(extra).toMatchObject({ pass: false, violations: [{ code: "SELF_TEST_FAILED", msg: "x" }] });
    const inv = walVerifyReport(clean(), { ...base, invariantFailures: { R5_NO_PHANTOMS: "iteration 3: phantom survived" } });
    expect(inv.pass).toBe(false);
    expect(inv.invariants.R5_NO_PHANTOMS).toEqual({ pass: false, msg: "iteration 3: phantom survived" });
    // `autonomy wal verify` (no harness): rename NOT_RUN does not fail a clean directory.
    expect(walVerifyReport(clean(), { arch: "amd64", fs: "ext4", run: 1 })).toMatchObject({ pass: true, seed: null, rename_atomic: "NOT_RUN", total_iterations: 0 });
  });

  it("carries the inspection's violation codes", () => {
    const gap = inspectWal(Buffer.concat([1, 3].map((seq) => encodeFrame({ seq, event: {} }))), Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]));
    const r = walVerifyReport(gap, { arch: "amd64", fs: "ext4", run: 1 });
    expect(r.pass).toBe(false);
    expect(r.violations).toContainEqual(expect.objectContaining({ code: "SEQ_GAP", invariant: "R2_SEQ_CONTIGUOUS" }));
    expect(r.invariants.R2_SEQ_CONTIGUOUS.pass).toBe(false);
  });
});

// ------------------------------------------------------------------ a deliberately broken cell

needs("python3").describe("a broken cell is reported as FAIL with the violation code", () => {
  async function cell(name: string, hooks: CellStepsInput["hooks"]): Promise<{ report: CellReport; runDir: string }> {
    const { runN, runDir } = await claimRunDir(join(root, "broken", name));
    const report = await runCellSteps({
      name: `amd64/${name}`,
      arch: "amd64",
      fs: "ext4",
      device: "volume",
      runN,
      runDir,
      workDir: join(runDir, ".work"),
      seed: 7,
      iterations: 2,
      command: "test",
      environment: { node: process.version, autonomy: "test", platform: process.platform, kernel: "test" },
      log: new CellLog(name),
      hooks,
    });
    return { report, runDir };
  }

  it("corrupt JSON in the step-3 fixture: NO_JSON_CORRUPTION fails, WAL_CORRUPT_INVALID_JSON is a fail-hard cause (exit 5), the image is kept", async () => {
    const { report, runDir } = await cell("corrupt-json", {
      // Frame 3's payload keeps its length but stops being JSON: what bit rot in storage looks like.
      tamperFixture: async (dir) => {
        const wal = Buffer.from(await readFile(walPaths(dir).wal));
        let pos = 0;
        for (let k = 1; k < 3; k++) pos += 4 + wal.readUInt32BE(pos);
        const fh = await open(walPaths(dir).wal, "r+");
        await fh.write(Buffer.from("!"), 0, 1, pos + 4);
        await fh.close();
      },
    });
    expect(report.pass).toBe(false);
    expect(report.invariants.NO_JSON_CORRUPTION.pass).toBe(false);
    expect(report.violations).toContainEqual(expect.objectContaining({ code: "WAL_CORRUPT_INVALID_JSON", invariant: "NO_JSON_CORRUPTION" }));
    expect(report.fail_hard_causes).toEqual(["WAL_CORRUPT_INVALID_JSON"]);
    expect(report.steps.fixture).toMatchObject({ pass: false, fail_hard: "WAL_CORRUPT_INVALID_JSON" });
    // The independent verifier saw the same damage and says so (exit 5), so the two agree.
    expect(report.steps.fixture.independent).toMatchObject({ agree: true, exit_code: 5, report: { fail_hard: "WAL_CORRUPT_INVALID_JSON" } });
    // The other steps still ran and passed.
    expect(report).toMatchObject({ total_iterations: 2, failed: 0, rename_atomic: "PASS" });
    expect(report.steps.self_tests.failed).toBe(0);
    expect((await stat(join(runDir, "artifacts", "fixture", "telemetry.wal"))).size).toBeGreaterThan(0);
    expect(exitCodeFor([{ status: "PASS", fail_hard_causes: [] }, { status: report.pass ? "PASS" : "FAIL", fail_hard_causes: report.fail_hard_causes }])).toBe(5);
  });

  it("a phantom left in the fixture fails R5 without a fail-hard cause (exit 1)", async () => {
    const { report } = await cell("phantom", {
      tamperFixture: async (dir) => {
        const fh = await open(walPaths(dir).wal, "a");
        await fh.write(encodeFrame({ seq: 6, event: { phantom: true } }));
        await fh.close();
      },
    });
    expect(report.pass).toBe(false);
    expect(report.violations).toContainEqual(expect.objectContaining({ code: "PHANTOM_BEYOND_SAFESEQ", invariant: "R5_NO_PHANTOMS" }));
    expect(report.fail_hard_causes).toEqual([]);
    expect(report.steps.fixture.independent).toMatchObject({ agree: true, exit_code: 1 });
    expect(exitCodeFor([{ status: "FAIL", fail_hard_causes: report.fail_hard_causes }])).toBe(1);
  });

  it("without python3, step 3 fails (never skips) and says how to install it", async () => {
    const { report } = await cell("no-python", { python: join(root, "no-such-python3") });
    expect(report.pass).toBe(false);
    expect(report.steps.fixture).toMatchObject({ pass: false, independent: { agree: false, report: null } });
    const v = report.violations.find((x) => x.code === "INDEPENDENT_VERIFIER_FAILED");
    expect(v?.step).toBe("fixture");
    expect(v?.msg).toMatch(/not found.*apt-get install -y python3/);
  });

  it("when the independent verifier disagrees with inspect, step 3 fails with both verdicts in the evidence", async () => {
    // A real run of scripts/wal_verify.py whose verdict on R2 is then flipped: a verifier that disagrees.
    const flip = join(root, "flip.py");
    const { writeFile, chmod } = await import("node:fs/promises");
    await writeFile(flip, [
      "import json, subprocess, sys",
      "r = subprocess.run([sys.executable] + sys.argv[1:], capture_output=True, text=True)",
      "d = json.loads(r.stdout)",
      "d['invariants']['R2_SEQ_CONTIGUOUS'] = {'pass': False, 'msg': 'flipped'}",
      "print(json.dumps(d))",
      "sys.exit(r.returncode)",
    ].join("\n"));
    const wrapper = join(root, "flip-python");
    await writeFile(wrapper, `#!/bin/sh\nexec python3 ${flip} "$@"\n`);
    await chmod(wrapper, 0o755);
    const { report } = await cell("disagree", { python: wrapper });
    expect(report.pass).toBe(false);
    expect(report.steps.fixture.pass).toBe(false);
    expect(report.steps.fixture.independent?.differences).toEqual(["R2_SEQ_CONTIGUOUS.pass: ours true, wal_verify.py false"]);
    expect(report.steps.fixture.independent?.report).toMatchObject({ invariants: { R2_SEQ_CONTIGUOUS: { pass: false } } });
    expect(report.invariants.R2_SEQ_CONTIGUOUS.pass).toBe(true); // ours, next to theirs
    expect(report.violations).toContainEqual(expect.objectContaining({ code: "VERIFIERS_DISAGREE", step: "fixture" }));
  });

  it("a failing self-test is a SELF_TEST_FAILED violation naming its check", async () => {
    const broken: SelfTest = { name: "ALWAYS_FAILS", clause: "test", run: () => Promise.reject(new Error("boom")) };
    const { report } = await cell("self-test", { selfTests: [broken] });
    expect(report.pass).toBe(false);
    expect(report.steps.self_tests).toMatchObject({ total: 1, failed: 1 });
    expect(report.violations).toContainEqual(expect.objectContaining({ code: "SELF_TEST_FAILED", check: "ALWAYS_FAILS" }));
  });
});

// ------------------------------------------------------------------ small pieces

describe("portability helpers", () => {
  it("plans cells per --fs-cells mode", () => {
    const show = (p: ReturnType<typeof planCells>): string[] => p.map((c) => `${c.fs}:${c.device}`);
    expect(show(planCells("auto", "ext4"))).toEqual(["ext4:volume", "xfs:loop"]);
    expect(show(planCells("auto", "tmpfs"))).toEqual(["tmpfs:volume", "ext4:loop", "xfs:loop"]);
    expect(show(planCells("ext4", "ext4"))).toEqual(["ext4:volume"]);
    expect(show(planCells("xfs", "ext4"))).toEqual(["xfs:loop"]);
    expect(show(planCells("all", "ext4"))).toEqual(["ext4:volume", "ext4:loop", "xfs:loop"]);
  });

  it("exits 0 only when a cell ran and every cell that ran passed", () => {
    const c = (status: "PASS" | "FAIL" | "SKIPPED", causes: string[] = []) => ({ status, fail_hard_causes: causes });
    expect(exitCodeFor([c("PASS"), c("SKIPPED")])).toBe(0);
    expect(exitCodeFor([c("PASS"), c("FAIL")])).toBe(1);
    expect(exitCodeFor([c("SKIPPED")])).toBe(1);
    expect(exitCodeFor([c("PASS"), c("FAIL", ["SEQ_GAP"])])).toBe(5);
  });

  it("names architectures as seed 002 does and file systems as one path segment", () => {
    expect([goArch("x64"), goArch("arm64"), goArch("riscv64"), goArch("ia32")]).toEqual(["amd64", "arm64", "riscv64", "386"]);
    expect(fsSegment("ext2/ext3")).toBe("ext2-ext3");
    expect(fsSegment("xfs")).toBe("xfs");
  });

  it("parses mountinfo lines, escapes included", () => {
    const m = parseMountinfoLine("42 27 7:0 / /tmp/a\\040b/mnt rw,relatime shared:5 - xfs /dev/loop0 rw,inode64,noquota");
    expect(m).toEqual({ major: 7, minor: 0, mountPoint: "/tmp/a b/mnt", options: "rw,relatime", fsType: "xfs", source: "/dev/loop0", superOptions: "rw,inode64,noquota" });
    expect(parseMountinfoLine("garbage")).toBeUndefined();
  });

  it("derives one independent PRNG stream per iteration from the seed", () => {
    const draw = (seed: number, i: number): number[] => Array.from({ length: 4 }, iterationRng(seed, i));
    expect(draw(42, 3)).toEqual(draw(42, 3));
    expect(draw(42, 3)).not.toEqual(draw(42, 4));
    expect(draw(42, 3)).not.toEqual(draw(43, 3));
    expect(draw(2 ** 40 + 42, 3)).not.toEqual(draw(42, 3)); // the seed's high bits count too
  });

  it("embeds the golden lock values of test/fixtures/lock unchanged", async () => {
    const fx = (n: string): Promise<string> => readFile(new URL(`../fixtures/lock/${n}`, import.meta.url), "utf8");
    expect(GOLDEN_LOCK_JSON).toBe(await fx("golden.lock.json"));
    expect(GOLDEN_PAYLOAD).toBe(await fx("golden.payload.json"));
    expect(GOLDEN_FINGERPRINT).toBe((await fx("golden.fingerprint")).trim());
  });
});
