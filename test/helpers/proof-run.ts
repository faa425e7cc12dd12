/**
 * Runs one proof suite for real, as `autonomy lab run` does (src/proofs
 * runner: a fresh database, the built `autonomy serve` as a child process —
 * `npm run build` first), into a temporary folder, and returns its report.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runProofs } from "../../src/proofs/runner.js";
import type { DbChoice } from "../../src/proofs/runner.js";
import type { ProofReport } from "../../src/proofs/report.js";
import type { SuiteId } from "../../src/proofs/suite.js";

export interface ProofRun {
  report: ProofReport;
  /** The report as written to DIR/<suite>.json. */
  written: ProofReport;
  lines: string[];
}

export async function runSuite(id: SuiteId, o: { db: "sqlite" | "postgres"; seed: number; devices?: number; thresholds?: Record<string, number> }): Promise<ProofRun> {
  const out = await mkdtemp(join(tmpdir(), `proof-${id}-`));
  const lines: string[] = [];
  try {
    const db: DbChoice = { kind: o.db };
    const [report] = await runProofs({
      suites: [id], outDir: out, db, seed: o.seed, command: `test ${id}`, log: (l) => void lines.push(l), signal: new AbortController().signal,
      params: { ...(o.devices !== undefined ? { devices: o.devices } : {}), thresholds: o.thresholds ?? {} },
    });
    if (report === undefined) throw new Error(`no report for ${id}`);
    const written = JSON.parse(await readFile(join(out, `${id}.json`), "utf8")) as ProofReport;
    return { report, written, lines };
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

/** The failing checks of a report, one line each (empty when it passed): what an assertion should print. */
export function failures(r: ProofReport): string[] {
  return [...r.checks.filter((c) => !c.pass).map((c) => `${c.name}: measured ${String(c.measured)}, threshold ${c.threshold} (${c.detail ?? ""})`), ...(r.error ? [`error ${r.error.code}: ${r.error.message}`] : [])];
}
