/**
 * `autonomy lab run` end to end: the built CLI (`npm run build` first) runs
 * VAL07 and VAL08 for real against a real `autonomy serve` child, at a test
 * size (`--devices`; the default, what the proofs in docs/benchmarks.md ran,
 * is 1,000), on SQLite and on a throwaway PostgreSQL cluster. The report
 * file is read back and checked against the contract; a failing check must
 * give exit 1, and Ctrl-C must leave no server and no cluster behind.
 */
import { afterEach, describe, expect, it } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AUTONOMY_BIN, describeRun, runCli, runJson } from "../helpers/cli.js";
import { needs } from "../helpers/needs.js";

interface Report {
  run_id: string;
  suite: string;
  claim: string;
  title: string;
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
    expect(report.title).toMatch(/REDUCED RUN, --devices 100/);
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

describe("autonomy lab run: stale reports", () => {
  it("review3: a run whose PostgreSQL cluster cannot start leaves no older (passing) report of its suites behind", async () => {
    const dir = await outDir();
    const old = JSON.stringify({ run_id: "old", suite: "val07", pass: true, checks: [] });
    await writeFile(join(dir, "val07.json"), old);
    await writeFile(join(dir, "val08.json"), old);
    await writeFile(join(dir, "val09.json"), old);
    const r = await runCli(["lab", "run", "val07", "--out", dir, "--db", "postgres", "--seed", "3"], { env: { AUTONOMY_PG_BINDIR: "/nonexistent-pg-bin" }, timeoutMs: 60_000 });
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr).toContain("does not hold all of initdb");
    // val07's stale report is gone; another suite's (not run) stays
    expect({ val07: existsSync(join(dir, "val07.json")), val09: existsSync(join(dir, "val09.json")) }).toEqual({ val07: false, val09: true });
  }, 60_000);

  it("review3: every report carries the run id the summary names (text and --json)", async () => {
    const dir = await outDir();
    const r = await runJson<{ pass: boolean; run_id: string; reports: Report[] }>(["lab", "run", "val07", "--out", dir, "--db", "postgres://proof@127.0.0.1:1/proofs", "--devices", "1", "--seed", "5", "--json"], { timeoutMs: 120_000 });
    expect(r.code, describeRun(r)).toBe(1);
    const runId = r.json.run_id;
    expect(runId).toMatch(/^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$/);
    const report = JSON.parse(await readFile(join(dir, "val07.json"), "utf8")) as Report;
    expect({ file: report.run_id, printed: r.json.reports[0]?.run_id }).toEqual({ file: runId, printed: runId });
    const t = await runCli(["lab", "run", "val07", "--out", dir, "--db", "postgres://proof@127.0.0.1:1/proofs", "--devices", "1", "--seed", "5"], { timeoutMs: 120_000 });
    const again = JSON.parse(await readFile(join(dir, "val07.json"), "utf8")) as Report;
    expect(again.run_id).not.toBe(runId);
    expect(t.stdout).toContain(`run ${again.run_id}: FAIL`);
  }, 120_000);
});

const PG_BIN = "/usr/lib/postgresql/15/bin";

/** The postmaster pid of a cluster dir, if one is running; stops it (it is ours) so nothing outlives the test. */
function reapCluster(clusterDir: string): number | undefined {
  const pidFile = join(clusterDir, "data", "postmaster.pid");
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
  let alive = false;
  try {
    process.kill(pid, 0);
    alive = true;
  } catch {
    alive = false;
  }
  if (alive) spawnSync("su", ["postgres", "-s", "/bin/sh", "-c", `${PG_BIN}/pg_ctl -D '${join(clusterDir, "data")}' -m immediate stop`], { stdio: "ignore" });
  return alive ? pid : undefined;
}

needs("postgresql").describe("autonomy lab run: nothing outlives it", () => {
  it("review3: a second SIGTERM while `lab run --db postgres` cleans up leaves no throwaway PostgreSQL cluster running", async () => {
    const out = await outDir();
    const child = spawn(process.execPath, [AUTONOMY_BIN, "lab", "run", "val09", "--out", out, "--db", "postgres", "--devices", "4", "--seed", "7"], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    const clusterDir = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no cluster line: ${stderr}`)), 90_000);
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString("utf8");
        const m = /throwaway PostgreSQL cluster at (\S+)/.exec(stderr);
        if (m?.[1] && /autonomy serve pid/.test(stderr)) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
    });
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 50));
    child.kill("SIGTERM"); // an impatient operator (or a supervisor's stop timeout) sends it again
    await exited;
    await new Promise((r) => setTimeout(r, 500));
    const orphan = reapCluster(clusterDir);
    const left = existsSync(clusterDir);
    if (left) spawnSync("rm", ["-rf", clusterDir]);
    expect({ orphaned_postmaster: orphan, cluster_dir_left: left }).toEqual({ orphaned_postmaster: undefined, cluster_dir_left: false });
  }, 150_000);
  it("review3: a lab run killed with SIGKILL (CI timeout, OOM killer) leaves neither its `autonomy serve` child nor its PostgreSQL cluster running", async () => {
    const out = await outDir();
    const child = spawn(process.execPath, [AUTONOMY_BIN, "lab", "run", "val09", "--out", out, "--db", "postgres", "--devices", "4", "--seed", "7"], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    const [clusterDir, servePid] = await new Promise<[string, number]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no cluster line: ${stderr}`)), 90_000);
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString("utf8");
        const m = /throwaway PostgreSQL cluster at (\S+)/.exec(stderr);
        const s = /autonomy serve pid ([0-9]+)/.exec(stderr);
        if (m?.[1] && s?.[1]) {
          clearTimeout(timer);
          resolve([m[1], Number(s[1])]);
        }
      });
    });
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    child.kill("SIGKILL");
    await exited;
    await new Promise((r) => setTimeout(r, 3000));
    let serveAlive = false;
    try {
      process.kill(servePid, 0);
      serveAlive = true;
      process.kill(servePid, "SIGKILL"); // ours: started by this test's lab run
    } catch {
      serveAlive = false;
    }
    const orphan = reapCluster(clusterDir);
    if (existsSync(clusterDir)) spawnSync("rm", ["-rf", clusterDir]);
    expect({ serve_alive: serveAlive, orphaned_postmaster: orphan }).toEqual({ serve_alive: false, orphaned_postmaster: undefined });
  }, 150_000);
});
