/**
 * Throwaway PostgreSQL clusters (src/orchestrator/db/pg-cluster.ts) against the
 * real system binaries, read back with psql (an independent client), and the
 * binary search on fake installation trees.
 */
import { spawn, spawnSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PgClusterError, findPgBinaries, pgClusterProblem, startPgCluster, PG_PROGRAMS } from "../../src/orchestrator/db/pg-cluster.js";
import { describeDialects, psql } from "../helpers/databases.js";
import { needs } from "../helpers/needs.js";

const scratch: string[] = [];
afterAll(async () => {
  for (const d of scratch) await rm(d, { recursive: true, force: true });
});

async function fakeInstall(majors: Record<string, readonly string[]>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "fake-pg-"));
  scratch.push(root);
  for (const [major, programs] of Object.entries(majors)) {
    const bin = join(root, major, "bin");
    await mkdir(bin, { recursive: true });
    for (const p of programs) {
      await writeFile(join(bin, p), "#!/bin/sh\n");
      await chmod(join(bin, p), 0o755);
    }
  }
  return root;
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(false);
    });
    s.once("error", () => resolve(true));
  });
}

describe("findPgBinaries", () => {
  it("picks the newest major version whose bin directory is complete, not a PATH symlink", async () => {
    const root = await fakeInstall({ "13": PG_PROGRAMS, "15": PG_PROGRAMS, "16": ["initdb"] });
    expect(findPgBinaries({}, root)).toEqual({ binDir: join(root, "15", "bin"), major: 15 });
  });

  it("no installation → PG_BINARIES_MISSING with the Debian package in the hint", async () => {
    const root = await fakeInstall({});
    let err: unknown;
    try {
      findPgBinaries({}, join(root, "absent"));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PgClusterError);
    expect((err as PgClusterError).code).toBe("PG_BINARIES_MISSING");
    expect((err as PgClusterError).hint).toMatch(/apt-get install postgresql/);
  });

  it("AUTONOMY_PG_BINDIR overrides the search, and an incomplete one is refused", async () => {
    const root = await fakeInstall({ "1": PG_PROGRAMS, "2": ["pg_ctl"] });
    expect(findPgBinaries({ AUTONOMY_PG_BINDIR: join(root, "1", "bin") }, "/nonexistent").binDir).toBe(join(root, "1", "bin"));
    expect(() => findPgBinaries({ AUTONOMY_PG_BINDIR: join(root, "2", "bin") })).toThrow(/does not hold all of/);
    expect(pgClusterProblem({ AUTONOMY_PG_BINDIR: join(root, "2", "bin") })).toMatch(/does not hold all of/);
  });
});

needs("postgresql").describe("a throwaway cluster", () => {
  it("starts on a free loopback port with a generated scram-sha-256 password and fsync on, psql reads it, stop() removes everything", async () => {
    const pgc = await startPgCluster({ database: "probe" });
    try {
      expect(pgc.url).toMatch(new RegExp(`^postgres://postgres:[0-9a-f]{36}@127\\.0\\.0\\.1:${pgc.port}/probe$`));
      const settings = psql(pgc, pgc.url, "SELECT current_setting('listen_addresses'), current_setting('fsync'), current_setting('unix_socket_directories'), current_database()");
      expect(settings).toEqual([["127.0.0.1", "on", pgc.dir, "probe"]]);
      // initdb refuses root: as root the data directory belongs to the postgres user.
      const owner = (await stat(join(pgc.dir, "data"))).uid;
      if (process.getuid?.() === 0) expect(owner).not.toBe(0);
      else expect(owner).toBe(process.getuid?.());
      const other = await pgc.createDatabase("second");
      psql(pgc, other, "CREATE TABLE t (x int); INSERT INTO t VALUES (7)");
      expect(psql(pgc, other, "SELECT x FROM t")).toEqual([["7"]]);
    } finally {
      await pgc.stop();
    }
    expect(existsSync(pgc.dir)).toBe(false);
    expect(await refused(pgc.port)).toBe(true);
    await pgc.stop(); // idempotent
  });
});

needs("postgresql").describe("a throwaway cluster: review3", () => {
  it("review3: a local user without the generated password cannot connect (no trust auth), not even as superuser over the socket", async () => {
    const pgc = await startPgCluster({ database: "probe" });
    try {
      const noPassword = pgc.url.replace(/:[0-9a-f]{36}@/, "@");
      const wrong = pgc.url.replace(/:[0-9a-f]{36}@/, ":nottherightpassword@");
      for (const url of [noPassword, wrong]) {
        const r = spawnSync(join(pgc.binaries.binDir, "psql"), ["-X", "-w", "-A", "-t", "-d", url, "-c", "SELECT 1"], { encoding: "utf8", env: { ...process.env, PGPASSWORD: undefined, PGCONNECT_TIMEOUT: "10" } });
        expect({ status: r.status, refused: /password/.test(r.stderr) }).toEqual({ status: 2, refused: true });
      }
      const socket = spawnSync(join(pgc.binaries.binDir, "psql"), ["-X", "-w", "-h", pgc.dir, "-p", String(pgc.port), "-U", "postgres", "-d", "probe", "-c", "SELECT 1"], { encoding: "utf8", env: { ...process.env, PGPASSWORD: undefined } });
      expect(socket.status).toBe(2);
      expect(psql(pgc, pgc.url, "SELECT 1")).toEqual([["1"]]);
    } finally {
      await pgc.stop();
    }
  });

  it("review3: a process that started a cluster and is SIGKILLed leaves no server and no directory (the watchdog stops and removes it)", async () => {
    const script = `import { startPgCluster } from ${JSON.stringify(join(process.cwd(), "src/orchestrator/db/pg-cluster.ts"))};
const c = await startPgCluster({ database: "orphan" });
process.stdout.write(c.dir + "\\n");
setInterval(() => undefined, 1000);`;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    const dir = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (b: Buffer) => {
        out += b.toString("utf8");
        if (out.includes("\n")) resolve(out.trim());
      });
      child.once("exit", () => reject(new Error(`exited before starting a cluster: ${out}`)));
    });
    const port = Number((await readFile(join(dir, "data", "postmaster.pid"), "utf8")).split("\n")[3]);
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await exited;
    const deadline = Date.now() + 15_000;
    while (existsSync(dir) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect({ dir_left: existsSync(dir), refused: await refused(port) }).toEqual({ dir_left: false, refused: true });
  }, 60_000);
});

describeDialects("the dual-dialect helper", (db) => {
  it("gives every test a fresh, distinct database", async () => {
    const a = await db.fresh();
    const b = await db.fresh();
    expect(a).not.toBe(b);
    if (db.dialect === "postgres") {
      expect(a).toMatch(/^postgres:\/\/postgres:[0-9a-f]{36}@127\.0\.0\.1:\d+\/t_/);
      expect(psql(db.cluster(), a, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).toEqual([["0"]]);
    } else {
      expect(existsSync(a)).toBe(false);
    }
  });
});
