/**
 * Release polling benchmark (issue 10 "bench/poll"): `GET /v1/releases/latest`
 * answering 304, served by the real CLI (`autonomy serve`, its own process, on
 * SQLite with one published release) and hammered by autocannon in ANOTHER
 * process, with the If-None-Match a node sends and a node credential (nodes are
 * who poll; the credential is authenticated on every request, so auth is part
 * of the cost). In the same run, with the same autocannon settings, the peer: a
 * bare Fastify server (bench/poll-bare.ts, its own process) whose one route
 * answers 304 to the same request. Rounds alternate between the two.
 * Every response must be a 304 (any other status, error or timeout fails the run).
 * Bars: ours ≥ 5,000 requests/s and ≥ half the bare route's rate.
 *
 * The server runs from source (`node --import tsx src/cli/autonomy-main.ts serve`,
 * the same code `bin/autonomy.js` runs after a build, never a stale dist/).
 *
 * Run: npm run bench:poll   (POLL_SECONDS per round, default 8; POLL_ROUNDS, default 3;
 * POLL_CONNECTIONS, default 64; POLL_PROFILE=DIR: the server writes a --cpu-prof there;
 * BENCH_QUICK=1: one 1-second round each, for the smoke test). Only 127.0.0.1.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { CpClient } from "../src/cpapi/index.js";
import type { Release } from "../src/cpapi/index.js";
import { signStatement } from "../src/supplychain/index.js";
import type { ReleasePredicate } from "../src/supplychain/index.js";

const QUICK = process.env["BENCH_QUICK"] === "1";
const SECONDS = QUICK ? 1 : Number(process.env["POLL_SECONDS"] ?? 8);
const ROUNDS = QUICK ? 1 : Number(process.env["POLL_ROUNDS"] ?? 3);
const CONNECTIONS = Number(process.env["POLL_CONNECTIONS"] ?? 64);
const PROFILE = process.env["POLL_PROFILE"];
const MIN_RPS = 5000;
const WATCHDOG_MS = 170_000;
/** Every child process still running (the watchdog kills them). */
const LIVE = new Set<ChildProcess>();

function track<C extends ChildProcess>(child: C): C {
  LIVE.add(child);
  child.once("exit", () => LIVE.delete(child));
  return child;
}
const MIN_RATIO = 0.5;
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const AUTOCANNON = join(ROOT, "node_modules", "autocannon", "autocannon.js");

/** What a round measured (one autocannon run). */
export interface Round {
  target: "autonomy serve" | "bare fastify";
  rps: number;
  p50: number;
  p99: number;
  total: number;
  /** Responses that were not 304, plus errors and timeouts. */
  bad: number;
  /** The server process's CPU time per request (user + system), µs: steadier than requests/s on a shared machine. */
  cpuUs: number;
}

/** A process's user + system CPU time in ms (Linux /proc; NaN elsewhere). USER_HZ is 100 on Linux. */
async function cpuMsOf(pid: number | undefined): Promise<number> {
  try {
    const stat = await readFile(`/proc/${String(pid)}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return NaN;
  }
}

function sha(c: string): string {
  return `sha256:${c.repeat(64)}`;
}

function predicate(): ReleasePredicate {
  return {
    sequence: 1, channel: "stable", repository: "registry.example/bench/agent",
    image: { digest: sha("a"), mediaType: "application/vnd.oci.image.manifest.v1+json" },
    lock: { digest: sha("b"), size: 812, behavioral_fingerprint: `blake3:${"c".repeat(64)}` },
    policy_bundle: { digest: sha("e"), size: 4096, name: "strict", version: "2.0.0" },
    issued_at: new Date().toISOString().replace(/\.\d+Z$/, "Z"), expires_at: new Date(Date.now() + 30 * 86400_000).toISOString().replace(/\.\d+Z$/, "Z"),
  };
}

/** Spawns a child and waits (bounded) for the first stdout/stderr line `pick` accepts. */
async function spawnUntil<T>(args: string[], pick: (line: string) => T | undefined, timeoutMs = 60_000): Promise<{ child: ChildProcess; value: T }> {
  const child = track(spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] }));
  const seen: string[] = [];
  const value = await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line from ${args.join(" ")} within ${timeoutMs} ms:\n${seen.join("\n")}`)), timeoutMs);
    const onLine = (line: string): void => {
      seen.push(line);
      const v = pick(line);
      if (v === undefined) return;
      clearTimeout(timer);
      resolve(v);
    };
    for (const s of [child.stdout, child.stderr]) if (s) createInterface({ input: s }).on("line", onLine);
    child.once("exit", (code) => (clearTimeout(timer), reject(new Error(`${args.join(" ")} exited (${String(code)}) before it was ready:\n${seen.join("\n")}`))));
  });
  return { child, value };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

interface AutocannonJson {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  errors: number;
  timeouts: number;
  statusCodeStats: Record<string, { count: number }>;
}

/** One autocannon run in its own process (the load generator never shares the server's). */
async function cannon(target: Round["target"], server: ChildProcess, url: string, headers: Record<string, string>): Promise<Round> {
  const cpuBefore = await cpuMsOf(server.pid);
  const args = [AUTOCANNON, "-j", "-c", String(CONNECTIONS), "-d", String(SECONDS), ...Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]), url];
  const child = track(spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] }));
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0) throw new Error(`autocannon exited ${String(code)}: ${err}`);
  const r = JSON.parse(out) as AutocannonJson;
  const not304 = Object.entries(r.statusCodeStats).reduce((n, [status, s]) => n + (status === "304" ? 0 : s.count), 0);
  const cpuUs = ((await cpuMsOf(server.pid)) - cpuBefore) * 1000 / Math.max(1, r.requests.total);
  return { target, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, total: r.requests.total, bad: not304 + r.errors + r.timeouts, cpuUs };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "bench-poll-"));
  const children: ChildProcess[] = [];
  // Bounded whatever happens (a hung server or load generator): kill what we started and say so.
  const watchdog = setTimeout(() => {
    for (const c of LIVE) c.kill("SIGKILL");
    process.stderr.write(`bench:poll: did not finish within ${WATCHDOG_MS / 1000} s; its processes were killed\n`);
    process.exit(2);
  }, WATCHDOG_MS);
  watchdog.unref();
  const started = new Date().toISOString();
  const loadBefore = loadavg();
  const rounds: Round[] = [];
  try {
    const tokenFile = join(dir, "owner-token");
    const prof = PROFILE !== undefined ? ["--cpu-prof", "--cpu-prof-dir", PROFILE] : [];
    const serve = await spawnUntil([...prof, "--import", "tsx", "src/cli/autonomy-main.ts", "serve", "--db", join(dir, "cp.db"), "--listen", "127.0.0.1:0", "--bootstrap-token-file", tokenFile, "--json"], (line) => {
      if (!line.startsWith("{\"ok\":true")) return undefined;
      return (JSON.parse(line) as { url: string }).url;
    });
    children.push(serve.child);
    const base = serve.value;
    const owner = new CpClient({ baseUrl: base, token: (await readFile(tokenFile, "utf8")).trim() });
    const key = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    const release = await owner.publishRelease({ statement: signStatement(predicate(), [key]).envelope as Release["statement"], image: "registry.example/bench/agent:1", channel: "stable", notes: "bench" });
    const enrollment = await owner.createEnrollmentToken({ node_id: "bench-node-1" });
    const node = await new CpClient({ baseUrl: base }).enroll(enrollment.token, { node_id: "bench-node-1" });

    const bare = await spawnUntil(["--import", "tsx", join("bench", "poll-bare.ts"), release.release_id], (line) => (line.startsWith("http://") ? line.trim() : undefined));
    children.push(bare.child);

    const path = "/v1/releases/latest?channel=stable";
    const headers = { authorization: `Bearer ${node.credential}`, "if-none-match": `"${release.release_id}"` };
    // One request each first: a wrong setup must fail loudly, not be measured.
    for (const u of [base, bare.value]) {
      const res = await fetch(new URL(path, u), { headers });
      if (res.status !== 304) throw new Error(`${u}${path} answered ${res.status}, expected 304: ${await res.text()}`);
    }
    for (let k = 0; k < ROUNDS; k++) {
      const order: Array<[Round["target"], ChildProcess, string]> = [["autonomy serve", serve.child, base], ["bare fastify", bare.child, bare.value]];
      if (k % 2 === 1) order.reverse();
      for (const [target, child, u] of order) rounds.push(await cannon(target, child, new URL(path, u).href, headers));
    }
  } finally {
    for (const c of children.reverse()) await stop(c);
    await rm(dir, { recursive: true, force: true });
  }
  clearTimeout(watchdog);
  report(rounds, started, loadBefore, loadavg());
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
}

function report(rounds: Round[], started: string, before: number[], after: number[]): void {
  const cpu = cpus();
  const f = (n: number | undefined): string => (n ?? NaN).toFixed(2);
  process.stdout.write(`Machine: ${cpu.length} × ${cpu[0]?.model ?? "?"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}; started ${started}; load average ${f(before[0])} before, ${f(after[0])} after\n`);
  process.stdout.write(`autocannon ${CONNECTIONS} connections, ${SECONDS} s per round, ${ROUNDS} round(s) per target, alternating; GET /v1/releases/latest?channel=stable, If-None-Match, node credential\n\n`);
  process.stdout.write("| round | target | requests/s | p50 ms | p99 ms | requests | not 304 | server CPU µs/request |\n|---|---|---|---|---|---|---|---|\n");
  rounds.forEach((r, i) => process.stdout.write(`| ${Math.floor(i / 2) + 1} | ${r.target} | ${Math.round(r.rps)} | ${r.p50} | ${r.p99} | ${r.total} | ${r.bad} | ${r.cpuUs.toFixed(1)} |\n`));
  const ours = mean(rounds.filter((r) => r.target === "autonomy serve").map((r) => r.rps));
  const bare = mean(rounds.filter((r) => r.target === "bare fastify").map((r) => r.rps));
  const bad = rounds.reduce((n, r) => n + r.bad, 0);
  const ratio = ours / bare;
  const checks = [
    { name: `ours ≥ ${MIN_RPS} requests/s`, pass: ours >= MIN_RPS, measured: Math.round(ours) },
    { name: `ours ≥ ${MIN_RATIO * 100} % of bare fastify`, pass: ratio >= MIN_RATIO, measured: `${(ratio * 100).toFixed(1)} %` },
    { name: "every response a 304 (no errors, no timeouts)", pass: bad === 0 && rounds.every((r) => r.total > 0), measured: bad },
  ];
  const cpuOurs = mean(rounds.filter((r) => r.target === "autonomy serve").map((r) => r.cpuUs));
  const cpuBare = mean(rounds.filter((r) => r.target === "bare fastify").map((r) => r.cpuUs));
  process.stdout.write(`\nmean: ours ${Math.round(ours)} requests/s, bare fastify ${Math.round(bare)} requests/s, ratio ${(ratio * 100).toFixed(1)} %; server CPU per request: ours ${cpuOurs.toFixed(1)} µs, bare ${cpuBare.toFixed(1)} µs\n`);
  for (const c of checks) process.stdout.write(`${c.pass ? "met" : "NOT MET"}: ${c.name} (measured ${c.measured})\n`);
  if (checks.some((c) => !c.pass)) {
    process.stderr.write("bench:poll: a bar was missed (see above)\n");
    process.exitCode = 1;
  }
}

await main();
