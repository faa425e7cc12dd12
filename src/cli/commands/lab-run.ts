import { InvalidArgumentError } from "commander";
import type { Command } from "commander";
import { randomInt } from "node:crypto";
import { resolve } from "node:path";
import { redactUrl, UsageError } from "../../lib/index.js";
import { builtSuites, newRunId, renderReport, runProofs, SUITE_IDS, suiteOf } from "../../proofs/index.js";
import type { DbChoice, ProofReport, SuiteId } from "../../proofs/index.js";
import { action, outcome } from "../run.js";
import { emit } from "../output.js";

const MAX_SEED = 2 ** 32 - 1;

function intIn(min: number, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    return n;
  };
}

/** `--db sqlite` (the default), `--db postgres` (a throwaway cluster) or `--db postgres://…`. */
function parseDb(v: string): DbChoice {
  if (v === "sqlite") return { kind: "sqlite" };
  if (v === "postgres") return { kind: "postgres" };
  if (/^postgres(ql)?:\/\//i.test(v)) {
    try {
      new URL(v);
      return { kind: "url", url: v };
    } catch {
      throw new InvalidArgumentError("is not a valid postgres:// URL");
    }
  }
  throw new InvalidArgumentError("must be sqlite, postgres (a throwaway cluster) or a postgres://user@host:port/db URL");
}

function parseThreshold(v: string, prev: Record<string, number>): Record<string, number> {
  const m = /^([a-z0-9_]+)=(-?[0-9]+(?:\.[0-9]+)?)$/.exec(v);
  if (!m?.[1] || m[2] === undefined) throw new InvalidArgumentError("must be name=number, e.g. plan_create_p99_ms=50");
  return { ...prev, [m[1]]: Number(m[2]) };
}

interface RunFlags {
  out: string;
  db: DbChoice;
  seed?: number;
  devices?: number;
  threshold: Record<string, number>;
  json?: boolean;
}

/** The command line for the report, with a database password redacted. */
function commandLine(suite: string, flags: RunFlags, seed: number): string {
  const db = flags.db.kind === "url" ? redactUrl(new URL(flags.db.url)) : flags.db.kind;
  const parts = ["autonomy", "lab", "run", suite, "--out", flags.out, "--db", db, "--seed", String(seed)];
  if (flags.devices !== undefined) parts.push("--devices", String(flags.devices));
  for (const [k, v] of Object.entries(flags.threshold)) parts.push("--threshold", `${k}=${v}`);
  return parts.join(" ");
}

function renderAll(r: { run_id: string; pass: boolean; reports: ProofReport[] }): string {
  return [...r.reports.map(renderReport), `run ${r.run_id}: ${r.pass ? "PASS" : "FAIL"} (${r.reports.length} report(s))`].join("\n\n");
}

export function registerLabRun(lab: Command): void {
  lab.command("run")
    .description(
      `run a proof suite of seed 000 (${SUITE_IDS.join(", ")}, or all) against a real \`autonomy serve\` child process and write DIR/<suite>.json ` +
        "(suite, claim, pass, checks with measured and threshold, backend, environment, seed, command). " +
        "Exit 0 when every check of every suite passed, 1 when a check failed or a suite could not finish, 2 on bad flags or an unknown suite",
    )
    .argument("<suite>", `${SUITE_IDS.join(" | ")} | all`)
    .requiredOption("--out <dir>", "where the reports go (DIR/<suite>.json) and the scratch folders (DIR/scratch/<suite>)")
    .option("--db <where>", "sqlite (a fresh file per suite), postgres (a throwaway cluster from the system binaries, removed afterwards) or a postgres://user@host:port/db URL", parseDb, { kind: "sqlite" } as DbChoice)
    .option("--seed <n>", "seed of every random choice (default random; printed and in the report)", intIn(0, MAX_SEED))
    .option("--devices <n>", "fleet size instead of the suite's default (1,000 for val07/val08); for the relay suites, the segment count (docs/proofs.md); recorded in the report", intIn(1, 10_000))
    .option("--threshold <name=value>", "override one numeric threshold (recorded in the report), e.g. plan_create_p99_ms=50; repeatable", parseThreshold, {} as Record<string, number>)
    .option("--json", "print the reports as JSON instead of the table")
    .action(action(async (suite: string, flags: RunFlags) => {
      const ids: SuiteId[] = suite === "all" ? builtSuites() : [suiteOf(suite).id];
      if (ids.length === 0) throw new UsageError("no proof suite is built yet", "this build has none");
      const seed = flags.seed ?? randomInt(0, MAX_SEED);
      const runId = newRunId();
      process.stderr.write(`proof seed: ${seed}, run ${runId}\n`);
      const quiet = flags.json === true && process.stderr.isTTY !== true;
      const stop = new AbortController();
      const onSignal = (): void => stop.abort();
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      try {
        const reports = await runProofs({
          suites: ids, runId, outDir: resolve(flags.out), db: flags.db, seed, command: commandLine(suite, flags, seed), signal: stop.signal,
          params: { ...(flags.devices !== undefined ? { devices: flags.devices } : {}), thresholds: flags.threshold },
          log: (line) => void (quiet ? undefined : process.stderr.write(`${line}\n`)),
          ...(process.env.AUTONOMY_TOKEN ? { fallbackToken: process.env.AUTONOMY_TOKEN } : {}),
        });
        emit({ pass: reports.length === ids.length && reports.every((r) => r.pass), run_id: runId, reports }, flags, renderAll);
        return outcome(reports.length === ids.length && reports.every((r) => r.pass));
      } finally {
        process.removeListener("SIGINT", onSignal);
        process.removeListener("SIGTERM", onSignal);
      }
    }));
}
