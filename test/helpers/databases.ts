/**
 * Runs a suite once per store dialect: SQLite (a temporary file) and
 * PostgreSQL (a throwaway cluster from the system binaries, ONE per test file,
 * started in beforeAll and stopped in afterAll; every test gets a fresh
 * database made with CREATE DATABASE … TEMPLATE template0).
 *
 *   describeDialects("events", (db) => {
 *     it("ingests", async () => { const store = await openStore(await db.fresh()); … });
 *   });
 *
 * The PostgreSQL suite goes through needs("postgresql"): a missing server
 * fails it with PEER_MISSING (never a silent skip) unless
 * AUTONOMY_TEST_SKIP=postgresql names it.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe } from "vitest";
import { startPgCluster } from "../../src/orchestrator/db/pg-cluster.js";
import type { PgCluster } from "../../src/orchestrator/db/pg-cluster.js";
import { needs } from "./needs.js";

export type TestDialect = "sqlite" | "postgres";
export const TEST_DIALECTS: readonly TestDialect[] = ["sqlite", "postgres"];

export interface DialectCase {
  readonly dialect: TestDialect;
  /** A fresh, empty database: a new SQLite file path, or the URL of a new PostgreSQL database. */
  fresh(): Promise<string>;
  /** The cluster of this file (PostgreSQL only; throws for SQLite). */
  cluster(): PgCluster;
}

// One cluster per test file (Vitest runs each file in its own module instance), shared
// by every PostgreSQL suite of the file: reference-counted, stopped by the last afterAll.
let shared: Promise<PgCluster> | undefined;
let users = 0;
let dbSeq = 0;

async function acquire(): Promise<PgCluster> {
  users++;
  shared ??= startPgCluster({ database: "autonomy_tests" });
  return shared;
}

async function release(): Promise<void> {
  users--;
  if (users > 0 || shared === undefined) return;
  const c = shared;
  shared = undefined;
  await (await c.catch(() => undefined))?.stop();
}

function sqliteCase(): DialectCase {
  let dir = "";
  let n = 0;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "autonomy-sqlite-"));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  return {
    dialect: "sqlite",
    fresh: () => Promise.resolve(join(dir, `t${++n}.db`)),
    cluster: () => {
      throw new Error("cluster() is for the postgres dialect only");
    },
  };
}

function postgresCase(): DialectCase {
  let cluster: PgCluster | undefined;
  beforeAll(async () => {
    cluster = await acquire();
  });
  afterAll(release);
  const get = (): PgCluster => {
    if (!cluster) throw new Error("the PostgreSQL cluster is not started (call fresh() inside a test or hook)");
    return cluster;
  };
  return {
    dialect: "postgres",
    fresh: () => get().createDatabase(`t_${process.pid}_${++dbSeq}`),
    cluster: get,
  };
}

/** Declares `fn`'s tests twice: `title [sqlite]` and `title [postgres]`. */
export function describeDialects(title: string, fn: (db: DialectCase) => void): void {
  describe(`${title} [sqlite]`, () => fn(sqliteCase()));
  needs("postgresql").describe(`${title} [postgres]`, () => fn(postgresCase()));
}

/**
 * Runs SQL through `psql` (an independent client: not our driver, not Kysely)
 * and returns the rows as arrays of text fields. For reading what the server
 * wrote from PostgreSQL's side.
 */
export function psql(cluster: PgCluster, url: string, sql: string): string[][] {
  const r = spawnSync(join(cluster.binaries.binDir, "psql"), ["-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql], { encoding: "utf8", env: { ...process.env, PGCONNECT_TIMEOUT: "10" } });
  if (r.status !== 0) throw new Error(`psql failed (exit ${String(r.status)}): ${r.stderr}`);
  return r.stdout
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => l.split("\t"));
}
