import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { randomInt } from "node:crypto";
import { resolve } from "node:path";
import { FS_CELL_MODES, MAX_SEED, runPortability, shellLine } from "../../evidence/index.js";
import type { FsCellsMode, PortabilitySummary } from "../../evidence/index.js";
import { action } from "../run.js";
import { emit } from "../output.js";
import { registerLabFleet } from "./lab-fleet.js";
import { registerLabRun } from "./lab-run.js";

function parseIterations(v: string): number {
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || n < 1 || n > 100_000) throw new InvalidArgumentError("must be an integer from 1 to 100000");
  return n;
}

function parseSeed(v: string): number {
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n) || n > MAX_SEED) throw new InvalidArgumentError(`must be an integer from 0 to ${MAX_SEED}`);
  return n;
}

function parseFsCells(v: string): FsCellsMode {
  if (!(FS_CELL_MODES as readonly string[]).includes(v)) throw new InvalidArgumentError(`must be one of ${FS_CELL_MODES.join(", ")}`);
  return v as FsCellsMode;
}

interface PortabilityFlags {
  out: string;
  iterations: number;
  seed?: number;
  fsCells: FsCellsMode;
  json?: boolean;
}

/** The table: one line per cell, PASS / FAIL / SKIPPED(reason); a cell that could not run is FAIL with its reason. */
export function renderSummary(s: PortabilitySummary): string {
  const rows = s.cells.map((c) => {
    const cell = c.device === "loop" ? `${c.cell} (loop)` : c.cell;
    if (c.status === "SKIPPED") return [cell, `SKIPPED(${c.reason ?? "no reason"})`, ""];
    if (c.run_n === undefined) return [cell, c.status, `could not run: ${c.reason ?? "no reason"}`];
    const detail = [
      `run-${c.run_n ?? "?"}`,
      `self-tests ${c.self_tests?.passed ?? 0}/${c.self_tests?.total ?? 0}`,
      `iterations ${c.iterations?.passed ?? 0}/${c.iterations?.total ?? 0}`,
      `rename ${c.rename_atomic ?? "?"}`,
      ...(c.status === "FAIL" ? [`violations ${(c.violation_codes ?? []).join(",")}`] : []),
      ...(c.fail_hard_causes.length > 0 ? [`FAIL-HARD ${c.fail_hard_causes.join(",")}`] : []),
      `${(c.ms / 1000).toFixed(1)} s`,
    ].join(", ");
    return [cell, c.status, detail];
  });
  const w0 = Math.max(4, ...rows.map((r) => (r[0] ?? "").length));
  // A skip reason is the row's last text: it does not widen the column.
  const w1 = Math.max(6, ...rows.filter((r) => !(r[1] ?? "").startsWith("SKIPPED(")).map((r) => (r[1] ?? "").length));
  const line = (r: string[]): string => `${(r[0] ?? "").padEnd(w0)}  ${(r[1] ?? "").padEnd(w1)}  ${r[2] ?? ""}`.trimEnd();
  const ran = s.cells.filter((c) => c.status !== "SKIPPED");
  const verdict = s.exit_code === 0 ? "PASS: every cell that ran passed" : s.exit_code === 5 ? "FAIL: a WAL fail-hard cause appeared (exit 5)" : ran.length === 0 ? "FAIL: no cell ran" : "FAIL: a cell failed";
  return [
    line(["cell", "result", "detail"]),
    ...rows.map(line),
    "",
    `evidence: ${s.out}/${s.arch}/<fs>/run-<N>/ (cmd.txt, dmesg.txt, autonomy.log, wal_verify.json)`,
    `seed: ${s.seed}; reproduce: ${s.command}`,
    `${verdict} (${(s.ms / 1000).toFixed(1)} s)`,
  ].join("\n");
}

export function registerLab(program: Command): void {
  const lab = program.command("lab").description("evidence harnesses: the portability matrix of seed 002; the fleet simulator; the fleet proof suites");
  registerLabFleet(lab);
  registerLabRun(lab);

  lab.command("portability")
    .description(
      "seed 002's core invariant matrix on this machine: for each file-system cell (the --out volume, plus xfs/ext4 on loop devices when root with mkfs available) " +
        "run the self-tests, the seeded crash harness, the known-good WAL fixture verify and the atomic rename check, and write " +
        "<out>/<arch>/<fs>/run-<N>/{cmd.txt,dmesg.txt,autonomy.log,wal_verify.json}. Exit 0 when every cell that ran passed, 5 on a WAL fail-hard cause, else 1",
    )
    .option("--out <dir>", "evidence root", "evidence")
    .option("--iterations <n>", "crash-harness iterations per cell", parseIterations, 20)
    .option("--seed <n>", "crash-harness PRNG seed (default: random; recorded in cmd.txt and wal_verify.json)", parseSeed)
    .option("--fs-cells <mode>", "auto (the --out volume + loop cells for the seed file systems it is not), ext4, xfs, or all", parseFsCells, "auto")
    .option("--json", "print the summary as one JSON document")
    .action(action(async (flags: PortabilityFlags) => {
      const seed = flags.seed ?? randomInt(0, 2 ** 32);
      const out = resolve(flags.out);
      const command = shellLine("autonomy", ["lab", "portability", "--out", out, "--iterations", String(flags.iterations), "--seed", String(seed), "--fs-cells", flags.fsCells]);
      const summary = await runPortability({
        out,
        iterations: flags.iterations,
        seed,
        fsCells: flags.fsCells,
        command,
        progress: (l) => void process.stderr.write(`${l}\n`),
      });
      emit(summary, flags, renderSummary);
      return { exitCode: summary.exit_code };
    }));
}
