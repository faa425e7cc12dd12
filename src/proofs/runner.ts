/**
 * Runs proof suites: for each, a fresh database (SQLite file in the suite's
 * scratch folder, a new database in a throwaway PostgreSQL cluster, or the
 * given URL), a real `autonomy serve` child on it, the suite, then the report
 * DIR/<suite>.json. Everything started here is stopped and removed again, on
 * success, on failure and on abort (Ctrl-C).
 */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { AutonomyError, messageOf } from "../lib/index.js";
import { startPgCluster } from "../orchestrator/index.js";
import type { PgCluster } from "../orchestrator/index.js";
import { launchControlPlane } from "./cp-process.js";
import type { LaunchedControlPlane } from "./cp-process.js";
import { ProofError } from "./errors.js";
import { environmentOf, newRunId, paramsOf, removeReport, writeReport } from "./report.js";
import type { ProofReport } from "./report.js";
import type { Backend, Check, Suite, SuiteId, SuiteParams } from "./suite.js";
import { suiteOf } from "./suites/index.js";

/** Where the control plane keeps its data: `sqlite` (a file per suite), `postgres` (a throwaway cluster), or a postgres:// URL. */
export type DbChoice = { kind: "sqlite" } | { kind: "postgres" } | { kind: "url"; url: string };

export interface RunProofsOptions {
  suites: readonly SuiteId[];
  outDir: string;
  db: DbChoice;
  seed: number;
  params: SuiteParams;
  /** The command line for the report (password already redacted). */
  command: string;
  log(line: string): void;
  signal: AbortSignal;
  /** Owner token for a --db URL whose database already bootstrapped one (AUTONOMY_TOKEN). */
  fallbackToken?: string;
  /** The run id every report of this run carries (default: a new one). */
  runId?: string;
}

/** Runs the suites in turn; returns their reports (each also written to outDir). */
export async function runProofs(o: RunProofsOptions): Promise<ProofReport[]> {
  const suites = o.suites.map(suiteOf);
  const runId = o.runId ?? newRunId();
  await mkdir(o.outDir, { recursive: true });
  // Every selected suite's old report goes first: whatever stops this run, no report of an earlier one is left to be read as its result.
  for (const suite of suites) await removeReport(o.outDir, suite.id);
  o.log(`run ${runId}: ${suites.map((s) => s.id).join(", ")}`);
  let cluster: PgCluster | undefined;
  try {
    if (o.db.kind === "postgres" && suites.some((s) => s.kind !== "edge")) {
      cluster = await startPgCluster();
      o.log(`throwaway PostgreSQL cluster at ${cluster.dir} (port ${cluster.port}), removed when the run ends`);
    }
    const reports: ProofReport[] = [];
    for (const suite of suites) {
      if (o.signal.aborted) break;
      if (suite.kind === "edge") {
        reports.push(await runOne(suite, undefined, runId, o));
        continue;
      }
      const db = o.db.kind === "url" ? o.db.url : cluster ? await cluster.createDatabase(`proof_${suite.id}`) : undefined;
      reports.push(await runOne(suite, db, runId, o));
    }
    return reports;
  } finally {
    await cluster?.stop();
  }
}

async function runOne(suite: Suite, pgUrl: string | undefined, runId: string, o: RunProofsOptions): Promise<ProofReport> {
  const backend: Backend = suite.kind === "edge" ? "none" : pgUrl === undefined ? "sqlite" : "postgres";
  const workDir = join(o.outDir, "scratch", suite.id);
  await rm(workDir, { recursive: true, force: true });
  await mkdir(workDir, { recursive: true, mode: 0o700 });
  const startedAt = new Date();
  const t0 = performance.now();
  // A reduced run (--devices) must not read as the claim's own size in the report or the summary.
  const title = o.params.devices === undefined ? suite.title : `${suite.title} — REDUCED RUN, --devices ${o.params.devices}: not evidence for the claim's size`;
  o.log(`${suite.id} (${suite.claim}) ${title}: ${backend}, seed ${o.seed}`);
  const checks: Check[] = [];
  let error: ProofReport["error"];
  let cp: LaunchedControlPlane | undefined;
  const notes: Record<string, string | number | boolean> = {};
  const base = { backend, seed: o.seed, workDir, log: (line: string) => o.log(line), signal: o.signal, params: o.params, note: (k: string, v: string | number | boolean) => void (notes[k] = v) };
  try {
    if (suite.kind === "edge") {
      checks.push(...(await untilAborted(suite.run(base), o.signal)));
      if (checks.length === 0) throw new ProofError("PROOF_SETUP_FAILED", `suite ${suite.id} returned no checks`, { hint: "a suite must measure something; this is a bug in the suite" });
      return await finish(suite, { runId, title, checks, backend, pgUrl, startedAt, t0, notes }, o);
    }
    const args = suite.serveArgs ? await suite.serveArgs(workDir) : [];
    cp = await launchControlPlane({ db: pgUrl ?? join(workDir, "cp.db"), workDir, args, ...(o.fallbackToken !== undefined ? { fallbackToken: o.fallbackToken } : {}) });
    o.log(`${suite.id}: autonomy serve pid ${cp.pid} at ${cp.url}`);
    checks.push(...(await untilAborted(suite.run({ ...base, cp }), o.signal)));
    if (checks.length === 0) throw new ProofError("PROOF_SETUP_FAILED", `suite ${suite.id} returned no checks`, { hint: "a suite must measure something; this is a bug in the suite" });
  } catch (e) {
    error = { code: e instanceof AutonomyError ? (e as AutonomyError).code : "INTERNAL", message: messageOf(e) };
    o.log(`${suite.id}: ${error.code}: ${error.message}`);
  } finally {
    await cp?.dispose();
  }
  return finish(suite, { runId, title, checks, backend, pgUrl, startedAt, t0, notes, ...(error ? { error } : {}) }, o);
}

interface Outcome {
  runId: string;
  title: string;
  checks: Check[];
  backend: Backend;
  pgUrl: string | undefined;
  startedAt: Date;
  t0: number;
  notes: Record<string, string | number | boolean>;
  error?: ProofReport["error"];
}

async function finish(suite: Suite, r: Outcome, o: RunProofsOptions): Promise<ProofReport> {
  const { runId, title, checks, backend, error } = r;
  const report: ProofReport = {
    run_id: runId, suite: suite.id, claim: suite.claim, title, pass: error === undefined && checks.length > 0 && checks.every((c) => c.pass), checks, backend,
    environment: await environmentOf(r.pgUrl), seed: o.seed, command: o.command, started_at: r.startedAt.toISOString(), duration_ms: Math.round(performance.now() - r.t0),
    params: paramsOf(o.params), ...(Object.keys(r.notes).length > 0 ? { notes: r.notes } : {}), ...(error ? { error } : {}),
  };
  const path = await writeReport(o.outDir, report);
  o.log(`${suite.id}: ${report.pass ? "PASS" : "FAIL"} (${path})`);
  return report;
}

/** The suite's result, or an error as soon as the run is aborted (the runner then kills the server; the suite's pending calls fail). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new ProofError("PROOF_INTERRUPTED", "interrupted", { hint: "the run was interrupted (Ctrl-C); run it again" }));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new ProofError("PROOF_INTERRUPTED", "interrupted", { hint: "the run was interrupted (Ctrl-C); run it again" }));
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
