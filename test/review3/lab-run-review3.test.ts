/**
 * Adversarial review 3: `autonomy lab run` (src/proofs). Real child processes
 * (needs `npm run build` for dist/). A failing test is a finding.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { AUTONOMY_BIN, launchControlPlane } from "../../src/proofs/cp-process.js";
import { messageOf } from "../../src/lib/index.js";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "rev3-lab-"));
  dirs.push(d);
  return d;
}

/** Command lines of every process on the machine (other than this one) that contain `needle`. */
function processesWith(needle: string): string[] {
  const hits: string[] = [];
  for (const pid of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
      if (cmd.includes(needle)) hits.push(`${pid}: ${cmd}`);
    } catch {
      // gone
    }
  }
  return hits;
}

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

describe("review3: lab run", () => {
  it("review3: a --db URL's password never shows in a process list (`ps`), the serve log or the error", async () => {
    const work = await tmp();
    const secret = `S3cret${process.pid}pw`;
    const url = `postgres://proofuser:${secret}@127.0.0.1:1/proofdb`;
    let seen: string[] = [];
    let done = false;
    const watch = (async () => {
      while (!done) {
        const hits = processesWith(secret);
        if (hits.length > 0) seen = hits;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    let err = "";
    try {
      const cp = await launchControlPlane({ db: url, workDir: work, readyTimeoutMs: 4000 });
      await cp.dispose();
    } catch (e) {
      err = messageOf(e);
    }
    done = true;
    await watch;
    const log = await readFile(join(work, "serve.log"), "utf8").catch(() => "");
    expect({ in_ps: seen, in_log: log.includes(secret), in_error: err.includes(secret) }).toEqual({ in_ps: [], in_log: false, in_error: false });
  }, 30_000);

  it("review3: a second SIGTERM while `lab run --db postgres` cleans up leaves no throwaway PostgreSQL cluster running", async () => {
    const out = await tmp();
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
    const out = await tmp();
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
