/**
 * `autonomy lab run` end to end: the built CLI (`npm run build` first) runs
 * VAL07 and VAL08 for real against a real `autonomy serve` child, at a test
 * size (`--devices`; the default, what the proofs in docs/benchmarks.md ran,
 * is 1,000), on SQLite and on a throwaway PostgreSQL cluster. The report
 * file is read back and checked against the contract; a failing check must
 * give exit 1, and Ctrl-C must leave no server and no cluster behind.
 */
import { afterEach, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AUTONOMY_BIN, describeRun, runCli, runJson } from "../helpers/cli.js";
import { needs } from "../helpers/needs.js";

interface Report {
  suite: string;
  claim: string;
  pass: boolean;
  checks: Array<{ name: string; pass: boolean; threshold: string; measured: string | number | boolean; detail?: string }>;
  backend: string;
  environment: { node: string; os: string; arch: string; cpus: number; cpu_model: string; mem_gb: number; pg_version?: string };
  seed: number;
  command: string;
  started_at: string;
  duration_ms: number;
  params: { devices?: number; thresholds: Record<string, number> };
  error?: { code: string; message: string };
}

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function outDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "lab-run-"));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function reportOf(dir: string, suite: string): Promise<Report> {
  return JSON.parse(await readFile(join(dir, `${suite}.json`), "utf8")) as Report;
}

function checkShape(r: Report, suite: string, backend: string, seed: number): void {
  expect(r).toMatchObject({ suite, backend, seed, params: expect.any(Object) as unknown });
  expect(r.claim).toMatch(/^FR-[A-Z]+-\d\d$/);
  expect(r.environment).toMatchObject({ node: process.version, cpus: expect.any(Number) as unknown, cpu_model: expect.any(String) as unknown, mem_gb: expect.any(Number) as unknown });
  expect(Date.parse(r.started_at)).not.toBeNaN();
  expect(r.duration_ms).toBeGreaterThan(0);
  expect(r.checks.length).toBeGreaterThan(3);
  for (const c of r.checks) expect(Object.keys(c)).toEqual(expect.arrayContaining(["name", "pass", "threshold", "measured"]));
  // pass is exactly "every check passed and nothing broke".
  expect(r.pass).toBe(r.error === undefined && r.checks.every((c) => c.pass));
}

const byName = (r: Report, name: string): Report["checks"][number] | undefined => r.checks.find((c) => c.name === name);

describe("autonomy lab run", () => {
  it("val07 at 100 nodes on SQLite: the report is written, every plan froze all 100 nodes, and the exit code is the report's verdict", async () => {
    const dir = await outDir();
    const r = await runJson<{ pass: boolean; reports: Report[] }>(["lab", "run", "val07", "--out", dir, "--devices", "100", "--seed", "7"], { timeoutMs: 120_000 });
    const report = await reportOf(dir, "val07");
    checkShape(report, "val07", "sqlite", 7);
    expect(r.json.reports[0]).toEqual(report);
    expect(r.code, describeRun(r)).toBe(report.pass ? 0 : 1);
    expect(byName(report, "plans created without error")?.pass).toBe(true);
    expect(byName(report, "every plan froze every node")).toMatchObject({ pass: true, measured: 100 });
    expect(byName(report, "plan create p99 (ms)")).toMatchObject({ threshold: "≤ 50 ms" });
    expect(report.params).toEqual({ devices: 100, thresholds: {} });
    expect(report.command).toBe(`autonomy lab run val07 --out ${dir} --db sqlite --seed 7 --devices 100`);
  }, 120_000);

  it("a check that fails makes exit 1: val07 with an impossible plan_create_p99_ms=0 threshold", async () => {
    const dir = await outDir();
    const r = await runCli(["lab", "run", "val07", "--out", dir, "--devices", "10", "--seed", "3", "--threshold", "plan_create_p99_ms=0"], { timeoutMs: 120_000 });
    expect(r.code, describeRun(r)).toBe(1);
    const report = await reportOf(dir, "val07");
    expect(report.pass).toBe(false);
    expect(byName(report, "plan create p99 (ms)")).toMatchObject({ pass: false, threshold: "≤ 0 ms" });
    expect(byName(report, "plans created without error")?.pass).toBe(true);
    expect(report.params.thresholds).toEqual({ plan_create_p99_ms: 0 });
    expect(r.stdout).toMatch(/plan create p99 \(ms\)\s+FAIL/);
  }, 120_000);

  it("val08 at 50 devices on SQLite: the plan completes with every node succeeded, zero failed requests and zero verify failures", async () => {
    const dir = await outDir();
    const r = await runCli(["lab", "run", "val08", "--out", dir, "--devices", "50", "--seed", "8"], { timeoutMs: 180_000 });
    const report = await reportOf(dir, "val08");
    checkShape(report, "val08", "sqlite", 8);
    expect(report.checks.filter((c) => !c.pass), describeRun(r)).toEqual([]);
    expect(r.code).toBe(0);
    expect(byName(report, "nodes succeeded")).toMatchObject({ measured: 50 });
    expect(byName(report, "failed HTTP requests (4xx/5xx/transport)")).toMatchObject({ measured: 0 });
    expect(byName(report, "nodes whose latest ack is activated for the release")).toMatchObject({ measured: 50 });
    expect(byName(report, "every created plan listed by GET /v1/rollouts")?.pass).toBe(true);
  }, 180_000);

  it("an unknown suite is a usage error (exit 2) and writes nothing", async () => {
    const dir = await outDir();
    const r = await runCli(["lab", "run", "val99", "--out", dir]);
    expect(r.code, describeRun(r)).toBe(2);
    expect(r.stderr).toMatch(/PROOF_SUITE_UNKNOWN|no proof suite named "val99"/);
    expect(existsSync(join(dir, "val99.json"))).toBe(false);
  });
});

needs("postgresql").describe("autonomy lab run --db postgres", () => {
  it("val08 at 30 devices on a throwaway PostgreSQL cluster passes, records the server version, and removes the cluster", async () => {
    const dir = await outDir();
    const r = await runCli(["lab", "run", "val08", "--out", dir, "--db", "postgres", "--devices", "30", "--seed", "9"], { timeoutMs: 180_000 });
    const report = await reportOf(dir, "val08");
    checkShape(report, "val08", "postgres", 9);
    expect(report.checks.filter((c) => !c.pass), describeRun(r)).toEqual([]);
    expect(r.code).toBe(0);
    expect(report.environment.pg_version).toMatch(/^\d+/);
    const clusterDir = /throwaway PostgreSQL cluster at (\S+)/.exec(r.stderr)?.[1];
    expect(clusterDir, r.stderr).toBeDefined();
    expect(existsSync(clusterDir as string)).toBe(false);
  }, 180_000);

  it("Ctrl-C mid-suite: the serve child is gone, the cluster removed, the report says PROOF_INTERRUPTED, exit 1", async () => {
    const dir = await outDir();
    const child = spawn(process.execPath, [AUTONOMY_BIN, "lab", "run", "val08", "--out", dir, "--db", "postgres", "--devices", "30", "--seed", "10"], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const servePid = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no serve pid:\n${err}`)), 60_000);
      child.stderr.on("data", (d: Buffer) => {
        err += d.toString("utf8");
        const m = /autonomy serve pid (\d+)/.exec(err);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
    });
    await new Promise((r) => setTimeout(r, 1500));
    child.kill("SIGINT");
    expect(await exited, err).toBe(1);
    expect(() => process.kill(servePid, 0)).toThrow();
    const clusterDir = /throwaway PostgreSQL cluster at (\S+)/.exec(err)?.[1];
    expect(existsSync(clusterDir as string)).toBe(false);
    const report = await reportOf(dir, "val08");
    expect(report).toMatchObject({ pass: false, error: { code: "PROOF_INTERRUPTED" } });
  }, 120_000);
});

describe("autonomy lab run --db postgres://…", () => {
  it("a database password never reaches the report, stdout or stderr, even when the server cannot start", async () => {
    const dir = await outDir();
    // Port 1 on loopback: nothing listens, so the serve child fails to open the store.
    const r = await runCli(["lab", "run", "val07", "--out", dir, "--db", "postgres://proof:s3cr3t-pw@127.0.0.1:1/proofs", "--devices", "1", "--seed", "4"], { timeoutMs: 120_000 });
    expect(r.code, describeRun(r)).toBe(1);
    const text = await readFile(join(dir, "val07.json"), "utf8");
    const report = JSON.parse(text) as Report;
    expect(report).toMatchObject({ pass: false, backend: "postgres", error: { code: "PROOF_CP_START_FAILED" } });
    expect(report.command).toContain("--db postgres://127.0.0.1:1/proofs");
    for (const out of [text, r.stdout, r.stderr]) expect(out).not.toContain("s3cr3t-pw");
  }, 120_000);
});
