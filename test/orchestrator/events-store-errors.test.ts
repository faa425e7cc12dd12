/**
 * Storage failures of POST /v1/events, for real: a full disk answers 507
 * STORE_FULL (the SQLite store, and a whole PostgreSQL cluster, on a small
 * tmpfs that the ingests fill; needs root to mount, like
 * test/telemetry/wal-disk-full), a busy store answers 503
 * STORE_BUSY with Retry-After (a second connection holds the write lock, on
 * SQLite and on PostgreSQL); either way the batch's transaction is rolled
 * back: not one of its rows is stored, and the same batch succeeds once the
 * cause is gone.
 */
import { spawnSync } from "node:child_process";
import { statfsSync } from "node:fs";
import { mkdir, mkdtemp, open as openFile, rm, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import pg from "pg";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import type { FastifyInstance } from "fastify";
import { EVENTS_LOCK_KEY, MIGRATIONS, bootstrapOwnerToken, ingestEvents, storeFailureOf, buildApp, migrateStore, openStore, startPgCluster } from "../../src/orchestrator/index.js";
import type { PgCluster, Store } from "../../src/orchestrator/index.js";
import { createLogger } from "../../src/observability/index.js";
import { bearer } from "../helpers/cp-app.js";
import { expectProblem, putRelease, rowCount } from "../helpers/cp-fleet.js";
import type { Injected } from "../helpers/cp-fleet.js";
import { describeDialects } from "../helpers/databases.js";
import { needs } from "../helpers/needs.js";

interface Cp {
  app: FastifyInstance;
  store: Store;
  owner: string;
  close(): Promise<void>;
}

/** A control plane whose store gives up waiting for a lock quickly (SQLite busy_timeout; PostgreSQL lock_timeout from the URL). */
async function openCp(location: string): Promise<Cp> {
  const store = await openStore(location, { busyTimeoutMs: 250 });
  await migrateStore(store, MIGRATIONS);
  const boot = await bootstrapOwnerToken(store, { now: () => Date.now() });
  if (!boot) throw new Error("fresh store had a token");
  const app = await buildApp({ store, log: createLogger({ name: "autonomy.cp.test", level: "silent" }) });
  await app.ready();
  return { app, store, owner: boot.token, close: async () => (await app.close(), await store.close()) };
}

function batch(prefix: string, n: number, pad = 0): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i) => ({ event_id: `${prefix}-${i}`, event_type: "t", node_id: "edge-1", timestamp: "2026-12-05T10:00:00Z", ...(pad > 0 ? { attributes: { pad: "x".repeat(pad) } } : {}) }));
}

async function countIds(store: Store, prefix: string): Promise<number> {
  const r = await store.db.selectFrom("events").select((eb) => eb.fn.countAll<number>().as("n")).where("event_id", "like", `${prefix}-%`).executeTakeFirstOrThrow();
  return Number(r.n);
}

describeDialects("a busy store", (db) => {
  let cp: Cp | undefined;
  afterEach(async () => {
    await cp?.close();
    cp = undefined;
  });

  it("503 STORE_BUSY with Retry-After while another connection holds the write lock; nothing written; the same batch succeeds afterwards", async () => {
    let location = await db.fresh();
    if (db.dialect === "postgres") location += `?options=${encodeURIComponent("-c lock_timeout=300ms")}`;
    cp = await openCp(location);
    const post = (): Promise<Injected> => cp!.app.inject({ method: "POST", url: "/v1/events", headers: bearer(cp!.owner), payload: { events: batch("busy", 50) } });
    expect((await cp.app.inject({ method: "POST", url: "/v1/events", headers: bearer(cp.owner), payload: { events: batch("before", 3) } })).statusCode).toBe(200);
    let release: () => Promise<void>;
    if (db.dialect === "sqlite") {
      const other = new BetterSqlite3(location);
      other.exec("BEGIN IMMEDIATE; INSERT INTO events (event_id, event_type, node_id, timestamp, received_at) VALUES ('other', 't', 'x', 't', 't')");
      release = () => {
        other.exec("ROLLBACK");
        other.close();
        return Promise.resolve();
      };
    } else {
      const other = new pg.Client({ connectionString: location });
      await other.connect();
      // Another writer's table lock (e.g. maintenance), and another server's ingest holding the ingest lock.
      await other.query(`BEGIN; LOCK TABLE events IN EXCLUSIVE MODE; SELECT pg_advisory_xact_lock(${EVENTS_LOCK_KEY.toString()})`);
      release = async () => {
        await other.query("ROLLBACK");
        await other.end();
      };
    }
    let res;
    try {
      res = await post();
    } finally {
      await release();
    }
    expectProblem(res, 503, "STORE_BUSY");
    expect(res.headers["retry-after"]).toBe("1");
    expect(await countIds(cp.store, "busy")).toBe(0);
    expect(await rowCount(cp.store, "events")).toBe(3);
    const again = await post();
    expect(again.json()).toEqual({ received: 50, inserted: 50, deduped: 0 });
  });
});

needs("postgresql").describe("a busy PostgreSQL store without a session lock_timeout", () => {
  let cluster: PgCluster | undefined;
  beforeAll(async () => {
    cluster = await startPgCluster({ database: "fallback" });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it("an ingest never waits forever: it gives up after the fallback lock timeout with 55P03 (→ STORE_BUSY), nothing written", async () => {
    const store = await openStore(cluster!.url);
    const other = new pg.Client({ connectionString: cluster!.url });
    try {
      await migrateStore(store, MIGRATIONS);
      await other.connect();
      await other.query(`BEGIN; SELECT pg_advisory_xact_lock(${EVENTS_LOCK_KEY.toString()})`);
      const events = batch("wait", 5).map((e) => ({ ...e, event_type: "t", node_id: "edge-1", timestamp: "2026-12-05T10:00:00Z", event_id: String(e["event_id"]) }));
      const t0 = Date.now();
      const err = await ingestEvents(store, events, new Date().toISOString(), { lockTimeoutMs: 200 }).then(() => undefined, (e: unknown) => e);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(storeFailureOf(err)).toBe("busy");
      expect((err as { code?: string }).code).toBe("55P03");
      await other.query("ROLLBACK");
      expect(await countIds(store, "wait")).toBe(0);
    } finally {
      await other.end().catch(() => undefined);
      await store.close();
    }
  });
});

const privileged = needs("root", "util-linux");
let mnt = "";
let mounted = false;

beforeAll(async () => {
  if (privileged.skipped) return;
  privileged.check();
  mnt = await mkdtemp(join(tmpdir(), "cp-enospc-"));
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`mount tmpfs failed: ${r.stderr}`);
  mounted = true;
});

afterAll(async () => {
  if (mounted) spawnSync("umount", [mnt]);
  if (mnt) await rm(mnt, { recursive: true, force: true });
});

/**
 * Fills what is left of the file system at `mnt` with ballast (all but `leave` bytes), ingests
 * batches until one is refused, checks the refusal is 507 STORE_FULL with nothing of that
 * batch stored, frees the ballast and sends the same batch again.
 */
async function fillUntilFull(cp: Cp, mnt: string, leave: number): Promise<void> {
  const ballast = join(mnt, "ballast");
  const st = statfsSync(mnt);
  const fh = await openFile(ballast, "w");
  await fh.write(Buffer.alloc(Math.max(0, st.bavail * st.bsize - leave), 1));
  await fh.close();
  let full: Injected | undefined;
  let k = 0;
  let stored = 0;
  for (; k < 200 && !full; k++) {
    const r = await cp.app.inject({ method: "POST", url: "/v1/events", headers: bearer(cp.owner), payload: { events: batch(`b${k}`, 100, 2000) } });
    if (r.statusCode === 200) stored += 100;
    else full = r;
  }
  expect(full, "the disk never filled").toBeDefined();
  expectProblem(full!, 507, "STORE_FULL");
  const failed = `b${k - 1}`;
  expect(stored).toBeGreaterThan(0);
  expect(await countIds(cp.store, failed)).toBe(0);
  expect(await rowCount(cp.store, "events")).toBe(stored);
  await unlink(ballast);
  const again = await cp.app.inject({ method: "POST", url: "/v1/events", headers: bearer(cp.owner), payload: { events: batch(failed, 100, 2000) } });
  expect(again.json()).toEqual({ received: 100, inserted: 100, deduped: 0 });
  expect(await rowCount(cp.store, "events")).toBe(stored + 100);
}

privileged.describe("a full disk (SQLite on a 3 MiB tmpfs; needs root)", () => {
  it("507 STORE_FULL when the disk fills mid-batch; not one row of that batch is stored; after space is freed the same batch goes in whole", async () => {
    const dir = join(mnt, "sqlite");
    await mkdir(dir);
    const cp = await openCp(join(dir, "cp.db"));
    try {
      await fillUntilFull(cp, mnt, 1024 * 1024);
    } finally {
      await cp.close();
    }
  });
});

needs("root", "util-linux", "postgresql").describe("a full disk (PostgreSQL on a 64 MiB tmpfs; needs root)", () => {
  let pgMnt = "";
  let pgMounted = false;
  let cluster: PgCluster | undefined;
  beforeAll(async () => {
    pgMnt = await mkdtemp(join(tmpdir(), "cp-pg-enospc-"));
    // mode=0755: the postgres user must reach its data directory inside.
    const r = spawnSync("mount", ["-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", pgMnt], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`mount tmpfs failed: ${r.stderr}`);
    pgMounted = true;
    cluster = await startPgCluster({ parentDir: pgMnt, database: "full" });
  });
  afterAll(async () => {
    await cluster?.stop();
    if (pgMounted) spawnSync("umount", [pgMnt]);
    if (pgMnt) await rm(pgMnt, { recursive: true, force: true });
  });

  it("507 STORE_FULL on SQLSTATE 53100 (a relation cannot grow); not one row of that batch is stored; after space is freed the same batch goes in whole", async () => {
    const cp = await openCp(cluster!.url);
    try {
      // 1 MiB left: the batch that needs a new table or index page fails (the current WAL segment is preallocated).
      await fillUntilFull(cp, pgMnt, 1024 * 1024);
    } finally {
      await cp.close();
    }
  });
});

it("review3: a node's first poll of a release while another writer holds the SQLite store answers 503 STORE_BUSY (as offers.ts promises), not 500, and a 200 never leaves unrecorded", async () => {
  const dir = await mkdtemp(join(tmpdir(), "rev3-busy-"));
  const path = join(dir, "cp.db");
  const store = await openStore(path, { busyTimeoutMs: 50 });
  await migrateStore(store, MIGRATIONS);
  const owner = (await bootstrapOwnerToken(store, { now: () => Date.now() }))?.token ?? "";
  const app = await buildApp({ store, log: createLogger({ name: "t", level: "silent" }) });
  const holder = new BetterSqlite3(path);
  try {
    await putRelease(store, "rel-00000000000000a0", 1);
    const et = await app.inject({ method: "POST", url: "/v1/enrollment-tokens", headers: bearer(owner), payload: { node_id: "edge-0" } });
    const en = await app.inject({ method: "POST", url: "/v1/nodes/enroll", headers: bearer(et.json<{ token: string }>().token), payload: { node_id: "edge-0" } });
    const cred = en.json<{ credential: string }>().credential;
    holder.prepare("begin immediate").run();
    const res = await app.inject({ method: "GET", url: "/v1/releases/latest?channel=stable", headers: bearer(cred) });
    holder.prepare("rollback").run();
    const offers = await store.db.selectFrom("node_offers").selectAll().execute();
    expect({ status: res.statusCode, code: res.statusCode >= 400 ? res.json<{ code: string }>().code : null, offers_if_200: res.statusCode === 200 ? offers.length : 1 }).toEqual({ status: 503, code: "STORE_BUSY", offers_if_200: 1 });
  } finally {
    holder.close();
    await app.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});
