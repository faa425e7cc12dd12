/**
 * Event ingestion benchmark (issue 10 "bench/ingest"): our ingest path — one
 * transaction per batch, INSERT … ON CONFLICT (event_id) DO NOTHING RETURNING,
 * PostgreSQL's ingest lock, wire → row conversion — against a raw batched
 * INSERT of the same rows through the same driver into an identical table
 * (same migration: unique event_id and the same indexes), in the same run,
 * on SQLite (better-sqlite3, WAL, synchronous=FULL) and PostgreSQL (a
 * throwaway cluster from the system binaries, fsync on). Rounds alternate
 * between the two so both tables grow alike. Bar: ours ≥ 70 % of raw.
 *
 * Run: npm run bench:ingest   (INGEST_EVENTS per side, default 40000; INGEST_BATCH, default 500)
 */
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import pg from "pg";
import type { IngestEvent } from "../src/cpapi/index.js";
import { MIGRATIONS, ingestEvents, migrateStore, openStore, startPgCluster } from "../src/orchestrator/index.js";
import type { Store } from "../src/orchestrator/index.js";

const TOTAL = Number(process.env.INGEST_EVENTS ?? 40_000);
const BATCH = Number(process.env.INGEST_BATCH ?? 500);
const BAR = 0.7;
const COLUMNS = ["event_id", "event_type", "node_id", "timestamp", "lock_fingerprint", "release_id", "attributes", "received_at"] as const;

type Row = readonly [string, string, string, string, string | null, string | null, string | null, string];

function wireBatch(side: string, k: number): IngestEvent[] {
  return Array.from({ length: BATCH }, (_, i) => ({
    event_id: `${side}:edge-${i % 50}:g1:${k * BATCH + i}`,
    event_type: "ai.policy.decision",
    node_id: `edge-${i % 50}`,
    timestamp: new Date(Date.UTC(2026, 11, 5, 10) + k * BATCH + i).toISOString(),
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
  ours(batch: IngestEvent[]): Promise<void>;
  raw(rows: Row[]): Promise<void>;
  close(): Promise<void>;
}

function placeholders(n: number, dollar: boolean): string {
  let p = 0;
  return Array.from({ length: n }, () => `(${COLUMNS.map(() => (dollar ? `$${++p}` : "?")).join(",")})`).join(",");
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
  const insert = raw.prepare(`INSERT INTO events (${COLUMNS.join(",")}) VALUES ${placeholders(BATCH, false)}`);
  const tx = raw.transaction((rows: Row[]) => insert.run(...rows.flat()));
  return {
    name: "sqlite",
    ours: async (b) => void (await ingestEvents(ours, b, new Date().toISOString())),
    raw: (rows) => Promise.resolve(void tx(rows)),
    close: async () => (raw.close(), await ours.close()),
  };
}

async function postgresSide(): Promise<Side & { stopCluster(): Promise<void> }> {
  const cluster = await startPgCluster({ database: "ours" });
  const ours: Store = await openStore(cluster.url);
  await migrateStore(ours, MIGRATIONS);
  const rawUrl = await cluster.createDatabase("raw");
  const rawStore = await openStore(rawUrl);
  await migrateStore(rawStore, MIGRATIONS);
  await rawStore.close();
  const raw = new pg.Client({ connectionString: rawUrl });
  await raw.connect();
  const text = `INSERT INTO events (${COLUMNS.join(",")}) VALUES ${placeholders(BATCH, true)}`;
  return {
    name: "postgres",
    ours: async (b) => void (await ingestEvents(ours, b, new Date().toISOString())),
    raw: async (rows) => {
      await raw.query("BEGIN");
      await raw.query({ name: "raw-insert", text, values: rows.flat() });
      await raw.query("COMMIT");
    },
    close: async () => (await raw.end(), await ours.close()),
    stopCluster: () => cluster.stop(),
  };
}

interface Result {
  side: string;
  ours: number;
  raw: number;
}

async function run(side: Side): Promise<Result> {
  const rounds = Math.ceil(TOTAL / BATCH);
  let oursMs = 0;
  let rawMs = 0;
  for (let k = 0; k < rounds; k++) {
    // Build outside the timed region for raw; ours converts inside (it is part of ingestion).
    const batch = wireBatch("o", k);
    const rows = rowsOf(wireBatch("r", k), new Date().toISOString());
    const first = k % 2 === 0;
    const timeOurs = async (): Promise<void> => {
      const t = performance.now();
      await side.ours(batch);
      oursMs += performance.now() - t;
    };
    const timeRaw = async (): Promise<void> => {
      const t = performance.now();
      await side.raw(rows);
      rawMs += performance.now() - t;
    };
    if (first) {
      await timeOurs();
      await timeRaw();
    } else {
      await timeRaw();
      await timeOurs();
    }
  }
  const n = rounds * BATCH;
  return { side: side.name, ours: n / (oursMs / 1000), raw: n / (rawMs / 1000) };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "bench-ingest-"));
  const results: Result[] = [];
  try {
    const s = await sqliteSide(dir);
    results.push(await run(s));
    await s.close();
    const p = await postgresSide();
    try {
      results.push(await run(p));
      await p.close();
    } finally {
      await p.stopCluster();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  process.stdout.write(`Machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}; ${TOTAL} events per side, batches of ${BATCH}\n\n`);
  process.stdout.write("| store | ours events/s | raw batched insert events/s | ours / raw | bar ≥ 70 % |\n|---|---|---|---|---|\n");
  let ok = true;
  for (const r of results) {
    const ratio = r.ours / r.raw;
    ok &&= ratio >= BAR;
    process.stdout.write(`| ${r.side} | ${Math.round(r.ours)} | ${Math.round(r.raw)} | ${(ratio * 100).toFixed(1)} % | ${ratio >= BAR ? "met" : "NOT met"} |\n`);
  }
  if (!ok) process.exitCode = 1;
}

await main();
