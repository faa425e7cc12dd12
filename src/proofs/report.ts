/**
 * The proof report: DIR/<suite>.json, written durably (temp, fsync, rename,
 * fsync dir). Its shape is the proofs contract (docs/proofs.md); `params`
 * records any knob that made the run smaller or its thresholds different.
 */
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { availableParallelism, cpus, platform, release, totalmem, arch } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { fsyncDir, writeFileAtomic } from "../lib/index.js";
import type { Backend, Check, SuiteId, SuiteParams } from "./suite.js";

export interface Environment {
  node: string;
  os: string;
  arch: string;
  cpus: number;
  cpu_model: string;
  mem_gb: number;
  pg_version?: string;
}

export interface ProofReport {
  /** The `lab run` invocation that wrote it (every report of one run shares it; the summary names it). */
  run_id: string;
  suite: SuiteId;
  claim: string;
  title: string;
  pass: boolean;
  checks: Check[];
  backend: Backend;
  environment: Environment;
  seed: number;
  /** The command line, any database password redacted. */
  command: string;
  started_at: string;
  duration_ms: number;
  params: { devices?: number; thresholds: Record<string, number> };
  /** How the suite ran where it had a choice (relay suites: `impairment` = "netem" or "proxy"). */
  notes?: Record<string, string | number | boolean>;
  /** Set when the suite could not finish (the checks it reached are kept, and pass is false). */
  error?: { code: string; message: string };
}

export async function environmentOf(pgUrl?: string): Promise<Environment> {
  const env: Environment = {
    node: process.version, os: `${platform()} ${release()}`, arch: arch(), cpus: availableParallelism(),
    cpu_model: cpus()[0]?.model.trim() ?? "unknown", mem_gb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
  };
  if (pgUrl !== undefined) env.pg_version = await pgVersion(pgUrl);
  return env;
}

async function pgVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    const r = await client.query<{ server_version: string }>("SHOW server_version");
    return r.rows[0]?.server_version ?? "unknown";
  } catch {
    return "unknown";
  } finally {
    await client.end().catch(() => undefined);
  }
}

export function paramsOf(p: SuiteParams): ProofReport["params"] {
  return { ...(p.devices !== undefined ? { devices: p.devices } : {}), thresholds: { ...p.thresholds } };
}

/** A run id: UTC start time and 6 random hex digits (sortable, unique enough for one output folder). */
export function newRunId(now = new Date()): string {
  return `${now.toISOString().replace(/[-:]|\.\d+/g, "")}-${randomBytes(3).toString("hex")}`;
}

/**
 * Removes DIR/<suite>.json durably (unlink, fsync of the directory) before a run: a run that is
 * interrupted, or never gets to a suite (a cluster that fails to start), must not leave an
 * older, maybe passing, report beside its own.
 */
export async function removeReport(outDir: string, suite: SuiteId): Promise<void> {
  await rm(join(outDir, `${suite}.json`), { force: true });
  await fsyncDir(outDir);
}

/** Writes DIR/<suite>.json durably; returns its path. */
export async function writeReport(outDir: string, report: ProofReport): Promise<string> {
  const path = join(outDir, `${report.suite}.json`);
  await writeFileAtomic(path, `${JSON.stringify(report, null, 2)}\n`);
  return path;
}

/** The table the CLI prints: one row per check. */
export function renderReport(r: ProofReport): string {
  const rows = r.checks.map((c) => [c.name, c.pass ? "PASS" : "FAIL", String(c.measured), c.threshold, c.detail ?? ""]);
  const head = ["check", "result", "measured", "threshold", "detail"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i < 4 ? c.padEnd(widths[i] ?? 0) : c)).join("  ").trimEnd();
  const verdict = r.pass ? "PASS" : "FAIL";
  return [
    `${r.suite} (${r.claim}) ${r.title}: ${verdict} on ${r.backend}, seed ${r.seed}, ${(r.duration_ms / 1000).toFixed(1)} s, run ${r.run_id}`,
    line(head),
    ...rows.map(line),
    ...(r.error ? [`error ${r.error.code}: ${r.error.message}`] : []),
  ].join("\n");
}
