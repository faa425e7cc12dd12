/**
 * Event ingestion benchmark (issue 10 "bench/ingest"): our ingest path
 * (`ingestEvents`, what POST /v1/events calls) — one atomic statement or
 * transaction per batch, INSERT … ON CONFLICT (node_id, event_id) DO NOTHING, the
 * inserted count, PostgreSQL's ingest lock, wire → row conversion — against a raw batched
 * INSERT of the same rows through the same driver into an identical table
 * (same migration: unique event_id and the same indexes), in the same run,
 * on SQLite (better-sqlite3, WAL, synchronous=FULL) and PostgreSQL (a
 * throwaway cluster from the system binaries, fsync on). Rounds alternate
 * between the two so both tables grow alike. Bar: ours ≥ 70 % of raw.
 *
 * A second run per store offers batches of which half the events were already
 * stored (the dedup path: a WAL exporter resending), against the same raw
 * statement with ON CONFLICT (node_id, event_id) DO NOTHING (a plain INSERT would fail).
 * Rates are events offered per second.
 *
 * Why the store function and not HTTP: the bar compares our storage path with
 * the driver's own batched insert; HTTP parsing and zod validation have no
 * counterpart on the raw side (bench/poll measures the HTTP stack).
 *
 * Run: npm run bench:ingest   (INGEST_EVENTS per side, default 40000; INGEST_BATCH, default 500;
 * BENCH_QUICK=1: 2,000 events per side, for the smoke test)
 */
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import pg from "pg";
import type { IngestEvent } from "../src/cpapi/index.js";
import { MIGRATIONS, ingestEvents, migrateStore, openStore, startPgCluster } from "../src/orchestrator/index.js";
import type { Store } from "../src/orchestrator/index.js";

const QUICK = process.env["BENCH_QUICK"] === "1";
const TOTAL = QUICK ? 2000 : Number(process.env["INGEST_EVENTS"] ?? 40_000);
const BATCH = Number(process.env["INGEST_BATCH"] ?? 500);
const BAR = 0.7;
const COLUMNS = ["event_id", "event_type", "node_id", "timestamp", "lock_fingerprint", "release_id", "attributes", "received_at"] as const;

type Row = readonly [string, string, string, string, string | null, string | null, string | null, string];

/** The batch of events `first` … `first + BATCH - 1` (event ids are `<side>:<node>:g1:<index>`). */
function wireBatch(side: string, first: number): IngestEvent[] {
  return Array.from({ length: BATCH }, (_, i) => ({
    event_id: `${side}:edge-${i % 50}:g1:${first + i}`,
    event_type: "ai.policy.decision",
    node_id: `edge-${i % 50}`,
    timestamp: new Date(Date.UTC(2026, 11, 5, 10) + first + i).toISOString(),
    lock_fingerprint: `blake3:${"ab".repeat(32)}`,
    release_id: "rel-00000000000000a1",
    attributes: { tool: "tool.echo", decision: "allow", latency_us: 21.3, policy_ref: "demo@1.0.0" },
  }));
}

/** The stored form (what the raw insert gets ready-made: the conversion is part of our cost). */
function rowsOf(batch: readonly IngestEvent[], now: string): Row[] {
  return batch.map((e) => [e.event_id, e.event_type, e.node_id, e.timestamp, e.lock_fingerprint ?? null, e.release_id ?? null, JSON.stringify(e.attributes), now] as const);
}

interface Side {
  name: string;
  /** Our ingest of one batch; answers the inserted count (checked against what the run expects). */
  ours(batch: IngestEvent[]): Promise<number>;
  /** The raw batched insert; `dedup`: with ON CONFLICT (node_id, event_id) DO NOTHING. */
  raw(rows: Row[], dedup: boolean): Promise<void>;
  close(): Promise<void>;
}

function placeholders(n: number, dollar: boolean): string {
  let p = 0;
  return Array.from({ length: n }, () => `(${COLUMNS.map(() => (dollar ? `$${++p}` : "?")).join(",")})`).join(",");
}

function rawText(dollar: boolean, dedup: boolean): string {
  return `INSERT INTO events (${COLUMNS.join(",")}) VALUES ${placeholders(BATCH, dollar)}${dedup ? " ON CONFLICT (node_id, event_id) DO NOTHING" : ""}`;
}

async function sqliteSide(dir: string): Promise<Side> {
  const ours = await openStore(join(dir, "ours.db"));
  await migrateStore(ours, MIGRATIONS);
  const rawStore = await openStore(join(dir, "raw.db"));
  await migrateStore(rawStore, MIGRATIONS);
  await rawStore.close();
  const raw = new BetterSqlite3(join(dir, "raw.db"));
  raw.pragma("journal_mode = WAL");
  raw.pragma("synchronous = FULL");
  const insert = raw.prepare(rawText(false, false));
  const insertDedup = raw.prepare(rawText(false, true));
  const tx = raw.transaction((rows: Row[], dedup: boolean) => (dedup ? insertDedup : insert).run(...rows.flat()));
  return {
    name: "SQLite",
    ours: async (b) => (await ingestEvents(ours, b, new Date().toISOString())).inserted,
    raw: (rows, dedup) => Promise.resolve(void tx(rows, dedup)),
    close: async () => (raw.close(), await ours.close()),
  };
}

async function postgresSide(): Promise<Side & { stopCluster(): Promise<void> }> {
  const cluster = await startPgCluster({ database: "ours" });
  try {
    const ours: Store = await openStore(cluster.url);
    await migrateStore(ours, MIGRATIONS);
    const rawUrl = await cluster.createDatabase("raw");
    const rawStore = await openStore(rawUrl);
    await migrateStore(rawStore, MIGRATIONS);
    await rawStore.close();
    const raw = new pg.Client({ connectionString: rawUrl });
    await raw.connect();
    return {
      name: "PostgreSQL",
      ours: async (b) => (await ingestEvents(ours, b, new Date().toISOString())).inserted,
      raw: async (rows, dedup) => {
        await raw.query("BEGIN");
        await raw.query({ name: dedup ? "raw-insert-dedup" : "raw-insert", text: rawText(true, dedup), values: rows.flat() });
        await raw.query("COMMIT");
      },
      close: async () => (await raw.end(), await ours.close()),
      stopCluster: () => cluster.stop(),
    };
  } catch (e) {
    await cluster.stop();
    throw e;
  }
}

/** One row of the report. */
interface Result {
  store: string;
  load: "new events" | "50 % duplicates";
  ours: number;
  raw: number;
}

/**
 * Fresh: batch k holds events k·B … k·B+B−1 (all new). Dup: batch k starts at
 * k·B/2, so half of it was stored by batch k−1 (batch 0, all new, is not timed).
 * Ours and raw alternate which goes first. Our inserted count is checked: a
 * path that stored nothing (or everything twice) must not look fast.
 */
async function run(side: Side, load: Result["load"]): Promise<Result> {
  const dup = load === "50 % duplicates";
  const rounds = Math.ceil(TOTAL / BATCH) + (dup ? 1 : 0);
  const step = dup ? BATCH / 2 : BATCH;
  const prefix = dup ? "d" : "f";
  let oursMs = 0;
  let rawMs = 0;
  let timed = 0;
  for (let k = 0; k < rounds; k++) {
    // Built outside the timed region for raw; ours converts inside (it is part of ingestion).
    const batch = wireBatch(`o${prefix}`, k * step);
    const rows = rowsOf(wireBatch(`r${prefix}`, k * step), new Date().toISOString());
    const expected = dup && k > 0 ? BATCH - step : BATCH;
    const timeOurs = async (): Promise<void> => {
      const t = performance.now();
      const inserted = await side.ours(batch);
      oursMs += performance.now() - t;
      if (inserted !== expected) throw new Error(`${side.name} ${load}: batch ${k} inserted ${inserted} events, expected ${expected}`);
    };
    const timeRaw = async (): Promise<void> => {
      const t = performance.now();
      await side.raw(rows, dup);
      rawMs += performance.now() - t;
    };
    if (dup && k === 0) {
      await side.ours(batch);
      await side.raw(rows, dup);
      oursMs = rawMs = 0;
      continue;
    }
    timed += BATCH;
    for (const timeOne of k % 2 === 0 ? [timeOurs, timeRaw] : [timeRaw, timeOurs]) await timeOne();
  }
  return { store: side.name, load, ours: timed / (oursMs / 1000), raw: timed / (rawMs / 1000) };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "bench-ingest-"));
  const results: Result[] = [];
  const started = new Date().toISOString();
  const loadBefore = loadavg();
  try {
    const s = await sqliteSide(dir);
    results.push(await run(s, "new events"), await run(s, "50 % duplicates"));
    await s.close();
    const p = await postgresSide();
    try {
      results.push(await run(p, "new events"), await run(p, "50 % duplicates"));
      await p.close();
    } finally {
      await p.stopCluster();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const f = (n: number | undefined): string => (n ?? NaN).toFixed(2);
  process.stdout.write(`Machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}; started ${started}; load average ${f(loadBefore[0])} before, ${f(loadavg()[0])} after; ${TOTAL} events per side and load, batches of ${BATCH}\n\n`);
  process.stdout.write("| store | load | ours events/s | raw batched insert events/s | ours / raw | bar ≥ 70 % |\n|---|---|---|---|---|---|\n");
  let ok = true;
  for (const r of results) {
    const ratio = r.ours / r.raw;
    ok &&= ratio >= BAR;
    process.stdout.write(`| ${r.store} | ${r.load} | ${Math.round(r.ours)} | ${Math.round(r.raw)} | ${(ratio * 100).toFixed(1)} % | ${ratio >= BAR ? "met" : "NOT met"} |\n`);
  }
  if (!ok) {
    process.stderr.write("bench:ingest: a bar was missed (see above)\n");
    process.exitCode = 1;
  }
}

await main();
