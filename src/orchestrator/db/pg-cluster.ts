/**
 * Throwaway PostgreSQL clusters from the system's binaries: the lab's
 * `--db postgres` (no URL) and the tests start one, use it, and remove it.
 *
 * - Binaries: `AUTONOMY_PG_BINDIR`, else the newest `/usr/lib/postgresql/<major>/bin`
 *   (where Debian puts them; a fresh machine has no PATH symlink to initdb).
 * - initdb refuses to run as root, so as root the data directory is chowned to
 *   the `postgres` system user (Debian's package creates it) and initdb/pg_ctl
 *   run with its uid/gid; otherwise they run as the caller.
 * - scram-sha-256 authentication with a generated password (in the URL only;
 *   any local user could otherwise connect as superuser while it runs),
 *   listening on 127.0.0.1 only, on a free port, with the Unix socket inside
 *   the temporary directory (never /var/run/postgresql), and fsync on (the
 *   durability the stores are tested for is the real one).
 * - A watchdog process holds a pipe from this one: when this process dies,
 *   even by SIGKILL, it stops the server (`-m immediate`) and removes the
 *   directory (pg_ctl detaches the postmaster, so nothing else would).
 */
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants, readdirSync, readFileSync } from "node:fs";
import { appendFile, chown, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { AutonomyError, freeLoopbackPort, messageOf } from "../../lib/index.js";

export const PG_CLUSTER_ERROR_CODES = ["PG_BINARIES_MISSING", "PG_CLUSTER_FAILED"] as const;
export type PgClusterErrorCode = (typeof PG_CLUSTER_ERROR_CODES)[number];

export class PgClusterError extends AutonomyError<PgClusterErrorCode> {}

/** Where Debian installs each major version: /usr/lib/postgresql/<major>/bin. */
export const DEBIAN_PG_ROOT = "/usr/lib/postgresql";
/** Overrides the search (a non-Debian machine, or a specific major). */
export const PG_BINDIR_VAR = "AUTONOMY_PG_BINDIR";
/** The programs a cluster needs (psql is for independent readers, e.g. the tests). */
export const PG_PROGRAMS = ["initdb", "pg_ctl", "postgres", "psql"] as const;

export interface PgBinaries {
  /** The directory holding initdb, pg_ctl, postgres and psql. */
  readonly binDir: string;
  /** The major version (from the Debian directory name; undefined for an override). */
  readonly major: number | undefined;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function complete(binDir: string): boolean {
  return PG_PROGRAMS.every((p) => executable(join(binDir, p)));
}

const MISSING_HINT = `install PostgreSQL (Debian: apt-get install postgresql, which puts the programs in ${DEBIAN_PG_ROOT}/<major>/bin), or set ${PG_BINDIR_VAR} to the directory holding ${PG_PROGRAMS.join(", ")}`;

/**
 * The PostgreSQL programs this machine has: the override, else the newest
 * Debian major version whose bin directory has all of {@link PG_PROGRAMS}.
 * Throws PG_BINARIES_MISSING saying where it looked.
 */
export function findPgBinaries(env: NodeJS.ProcessEnv = process.env, root = DEBIAN_PG_ROOT): PgBinaries {
  const override = env[PG_BINDIR_VAR];
  if (override !== undefined && override !== "") {
    if (complete(override)) return { binDir: override, major: undefined };
    throw new PgClusterError("PG_BINARIES_MISSING", `${PG_BINDIR_VAR}=${override} does not hold all of ${PG_PROGRAMS.join(", ")}`, { hint: MISSING_HINT });
  }
  let majors: number[] = [];
  try {
    majors = readdirSync(root)
      .filter((d) => /^\d+(\.\d+)?$/.test(d))
      .map(Number)
      .sort((a, b) => b - a);
  } catch {
    // no such directory: nothing installed
  }
  for (const major of majors) {
    const binDir = join(root, String(major), "bin");
    if (complete(binDir)) return { binDir, major };
  }
  throw new PgClusterError("PG_BINARIES_MISSING", `no PostgreSQL server programs found: ${root}/<major>/bin with ${PG_PROGRAMS.join(", ")} does not exist`, { hint: MISSING_HINT });
}

/** A uid/gid to run the server as; undefined = as the caller. */
interface RunAs {
  uid: number;
  gid: number;
}

/** As root: Debian's `postgres` system user (initdb refuses root). */
function runAs(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  let passwd = "";
  try {
    passwd = readFileSync("/etc/passwd", "utf8");
  } catch {
    // fall through to the error below
  }
  const entry = passwd.split("\n").find((l) => l.startsWith("postgres:"));
  const [, , uid, gid] = entry?.split(":") ?? [];
  if (uid === undefined || gid === undefined) {
    throw new PgClusterError("PG_CLUSTER_FAILED", "running as root, and there is no `postgres` user to run initdb as (initdb refuses root)", {
      hint: "install Debian's postgresql package (it creates the postgres system user), or run as a non-root user",
    });
  }
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * What keeps {@link startPgCluster} from running here (missing programs, or
 * root without a `postgres` user), or undefined: the test peer probe, so it
 * looks exactly where the cluster code does.
 */
export function pgClusterProblem(env: NodeJS.ProcessEnv = process.env): string | undefined {
  try {
    findPgBinaries(env);
    runAs();
    return undefined;
  } catch (e) {
    return messageOf(e);
  }
}


interface RunResult {
  code: number | null;
  output: string;
}

function run(cmd: string, args: readonly string[], as: RunAs | undefined, cwd: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // LC_ALL=C: initdb's locale must not depend on the caller's environment.
    const child = spawn(cmd, args, { cwd, env: { ...process.env, LC_ALL: "C", LANG: "C" }, stdio: ["ignore", "pipe", "pipe"], ...(as ?? {}) });
    let output = "";
    child.stdout.on("data", (b: Buffer) => (output += b.toString("utf8")));
    child.stderr.on("data", (b: Buffer) => (output += b.toString("utf8")));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, output }));
  });
}

export interface PgCluster {
  /** `postgres://postgres:<password>@127.0.0.1:<port>/<database>` of the database created at start (the password is generated per cluster). */
  readonly url: string;
  readonly port: number;
  readonly binaries: PgBinaries;
  /** The temporary directory (data directory, socket, log); removed by stop(). */
  readonly dir: string;
  /** Creates a fresh, empty database (from template0) and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** The URL of database `name` in this cluster. */
  urlOf(name: string): string;
  /** `pg_ctl stop -m fast`, then removes the directory. Idempotent. */
  stop(): Promise<void>;
}

export interface PgClusterOptions {
  /** The database created at start (default `autonomy`). */
  database?: string;
  binaries?: PgBinaries;
  /** Where the temporary directory goes (default: the OS temp dir); as root it must be traversable by `postgres`. */
  parentDir?: string;
}

const DB_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

function checkName(name: string): void {
  if (!DB_NAME.test(name)) {
    throw new PgClusterError("PG_CLUSTER_FAILED", `invalid database name ${JSON.stringify(name)}`, { hint: "use 1–63 of a-z 0-9 _ starting with a letter or _" });
  }
}

/**
 * Starts a throwaway cluster and creates one database in it.
 *
 * ### Examples
 * ```ts
 * const pgc = await startPgCluster();
 * try { const store = await openStore(pgc.url); … } finally { await pgc.stop(); }
 * ```
 */
export async function startPgCluster(opts: PgClusterOptions = {}): Promise<PgCluster> {
  const binaries = opts.binaries ?? findPgBinaries();
  const database = opts.database ?? "autonomy";
  checkName(database);
  const as = runAs();
  const dir = await mkdtemp(join(opts.parentDir ?? tmpdir(), "autonomy-pg-"));
  const watchdog = armWatchdog(binaries.binDir, dir, as);
  const password = randomBytes(18).toString("hex");
  try {
    const port = await initAndStart(binaries.binDir, dir, as, password);
    const cluster = makeCluster(binaries, dir, port, as, password, watchdog);
    await cluster.createDatabase(database);
    return { ...cluster, url: cluster.urlOf(database) };
  } catch (e) {
    await stopAndRemove(binaries.binDir, dir, as, watchdog);
    throw e;
  }
}

/**
 * The watchdog: a detached `node -e` child (its own session, so a Ctrl-C or a kill of this process group
 * does not reach it) reading a pipe from this process. End of file without a "disarm" line first means
 * this process is gone without stopping the cluster: it stops the server (`-m immediate`) as the user the
 * server runs as and removes the directory. Inline source, so it runs the same from src/ (tests) and dist/.
 */
const WATCHDOG_JS = `
const { spawnSync } = require("node:child_process");
const { existsSync, rmSync } = require("node:fs");
const [pgCtl, dir, data, uid, gid] = process.argv.slice(1);
let input = "", done = false;
const as = uid === "" ? {} : { uid: Number(uid), gid: Number(gid) };
const finish = () => {
  if (done) return;
  done = true;
  if (!input.includes("disarm")) {
    if (existsSync(data + "/postmaster.pid")) spawnSync(pgCtl, ["-D", data, "-m", "immediate", "-w", "stop"], { cwd: dir, stdio: "ignore", ...as });
    rmSync(dir, { recursive: true, force: true });
  }
  process.exit(0);
};
process.stdin.on("data", (b) => { input += String(b); });
process.stdin.on("end", finish);
process.stdin.on("close", finish);
process.stdin.on("error", finish);
`;

function armWatchdog(binDir: string, dir: string, as: RunAs | undefined): ChildProcess {
  const args = ["-e", WATCHDOG_JS, join(binDir, "pg_ctl"), dir, join(dir, "data"), as ? String(as.uid) : "", as ? String(as.gid) : ""];
  const child = spawn(process.execPath, args, { stdio: ["pipe", "ignore", "ignore"], detached: true });
  child.stdin?.on("error", () => undefined);
  // Neither the child nor its pipe may keep this process alive: the pipe closing when it exits is the point.
  child.unref();
  (child.stdin as Socket | null)?.unref();
  return child;
}

/** The cluster was stopped and removed here: the watchdog exits without touching anything. */
function disarm(watchdog: ChildProcess): void {
  watchdog.stdin?.end("disarm\n");
}

async function initAndStart(binDir: string, dir: string, as: RunAs | undefined, password: string): Promise<number> {
  const data = join(dir, "data");
  await mkdir(data, { mode: 0o700 });
  // The superuser's password reaches initdb through a 0600 file (never argv), removed right after.
  const pwfile = join(dir, "pwfile");
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  if (as) {
    await chown(dir, as.uid, as.gid);
    await chown(data, as.uid, as.gid);
    await chown(pwfile, as.uid, as.gid);
  }
  const init = await run(join(binDir, "initdb"), ["-D", data, "-U", "postgres", "--auth=scram-sha-256", `--pwfile=${pwfile}`, "-E", "UTF8", "--locale=C"], as, dir);
  await rm(pwfile, { force: true });
  if (init.code !== 0) fail("initdb", init);
  // Loopback only: no line in pg_hba.conf matters for other addresses, since the server does not listen there.
  // A port taken between freeLoopbackPort() and the start is retried with another one.
  for (let attempt = 1; ; attempt++) {
    const port = await freeLoopbackPort();
    await writeSettings(data, dir, port);
    const log = join(dir, "server.log");
    const start = await run(join(binDir, "pg_ctl"), ["-D", data, "-l", log, "-w", "-t", "60", "start"], as, dir);
    if (start.code === 0) {
      await waitForConnections(dir, port, password);
      return port;
    }
    const serverLog = await readFile(log, "utf8").catch(() => "");
    if (attempt >= 3 || !/could not bind|Address already in use/.test(serverLog)) fail("pg_ctl start", { code: start.code, output: `${start.output}\n${serverLog}` });
  }
}

/**
 * The settings `-c listen_addresses=127.0.0.1 -c port=… -c unix_socket_directories=… -c fsync=on`
 * would give, written to postgresql.conf (later lines win) so no shell ever
 * splits a path: pg_ctl passes its -o options through a shell.
 */
async function writeSettings(data: string, dir: string, port: number): Promise<void> {
  const quoted = dir.replace(/'/g, "''");
  await appendFile(join(data, "postgresql.conf"), `\n# autonomy throwaway cluster\nlisten_addresses = '127.0.0.1'\nport = ${port}\nunix_socket_directories = '${quoted}'\nfsync = on\n`);
}

/** pg_ctl -w waits for the server; this also proves a TCP client gets in. */
async function waitForConnections(dir: string, port: number, password: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password, database: "postgres" });
    try {
      await client.connect();
      await client.query("SELECT 1");
      return;
    } catch (e) {
      if (Date.now() > deadline) {
        throw new PgClusterError("PG_CLUSTER_FAILED", `the PostgreSQL server in ${dir} does not accept connections on 127.0.0.1:${port}: ${messageOf(e)}`, { hint: `see ${join(dir, "server.log")}` });
      }
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

function fail(step: string, r: RunResult): never {
  throw new PgClusterError("PG_CLUSTER_FAILED", `${step} failed (exit ${String(r.code)}): ${r.output.trim().split("\n").slice(-5).join(" | ")}`, {
    hint: "check that the temporary directory is writable by the user the server runs as, and that the PostgreSQL installation is complete",
  });
}

/** Clusters not stopped yet: stopped (immediately) when the process exits, so none outlives a crashed test run. */
const live = new Map<string, () => void>();
let exitHook = false;

function track(dir: string, stopNow: () => void): void {
  live.set(dir, stopNow);
  if (!exitHook) {
    exitHook = true;
    process.once("exit", () => {
      for (const stop of live.values()) stop();
    });
  }
}

function makeCluster(binaries: PgBinaries, dir: string, port: number, as: RunAs | undefined, password: string, watchdog: ChildProcess): Omit<PgCluster, "url"> {
  const data = join(dir, "data");
  track(dir, () => {
    spawnSync(join(binaries.binDir, "pg_ctl"), ["-D", data, "-m", "immediate", "stop"], { cwd: dir, stdio: "ignore", ...(as ?? {}) });
  });
  const urlOf = (name: string): string => `postgres://postgres:${password}@127.0.0.1:${port}/${name}`;
  let stopped: Promise<void> | undefined;
  return {
    port,
    binaries,
    dir,
    urlOf,
    async createDatabase(name) {
      checkName(name);
      const client = new pg.Client({ connectionString: urlOf("postgres") });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name}" TEMPLATE template0 ENCODING 'UTF8'`);
      } finally {
        await client.end();
      }
      return urlOf(name);
    },
    stop() {
      stopped ??= stopAndRemove(binaries.binDir, dir, as, watchdog);
      return stopped;
    },
  };
}

async function stopAndRemove(binDir: string, dir: string, as: RunAs | undefined, watchdog: ChildProcess): Promise<void> {
  const data = join(dir, "data");
  const pid = await readFile(join(data, "postmaster.pid"), "utf8").catch(() => undefined);
  if (pid !== undefined) await run(join(binDir, "pg_ctl"), ["-D", data, "-m", "fast", "-w", "stop"], as, dir);
  live.delete(dir);
  await rm(dir, { recursive: true, force: true });
  disarm(watchdog);
}
