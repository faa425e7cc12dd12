import { afterEach, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import { codeOf } from "../../../test/helpers/caught.js";
import { openStore } from "./connect.js";
import type { Store } from "./connect.js";
import { migrateStore } from "./migrate.js";
import { MIGRATIONS } from "./migrations.js";
import type { Migration } from "./migration.js";

describe("migrateStore (SQLite)", () => {
  const dirs: string[] = [];
  const stores: Store[] = [];
  const fresh = async (): Promise<{ store: Store; path: string }> => {
    const dir = await mkdtemp(join(tmpdir(), "autonomy-mig-"));
    dirs.push(dir);
    const path = join(dir, "cp.db");
    const store = await openStore(path);
    stores.push(store);
    return { store, path };
  };
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close().catch(() => undefined);
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  it("applies every migration once, in id order, and a second run applies none", async () => {
    const { store } = await fresh();
    const first = await migrateStore(store, MIGRATIONS);
    expect(first.applied).toEqual(MIGRATIONS.map((m) => m.id).sort());
    const again = await migrateStore(store, MIGRATIONS);
    expect(again.applied).toEqual([]);
    expect(again.current).toEqual(first.current);
  });

  it("opens the SQLite file in WAL mode with synchronous=FULL and foreign keys on", async () => {
    const { store } = await fresh();
    const mode = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(store.db);
    expect(mode.rows[0]?.journal_mode).toBe("wal");
    const sync = await sql<{ synchronous: number }>`pragma synchronous`.execute(store.db);
    expect(sync.rows[0]?.synchronous).toBe(2);
    const fk = await sql<{ foreign_keys: number }>`pragma foreign_keys`.execute(store.db);
    expect(fk.rows[0]?.foreign_keys).toBe(1);
  });

  it("refuses a database migrated by a newer build (STORE_SCHEMA_TOO_NEW) and changes nothing", async () => {
    const { store } = await fresh();
    const newer: Migration = { id: "9999_future", up: async (db) => void (await db.schema.createTable("future").addColumn("x", "text").execute()) };
    await migrateStore(store, [...MIGRATIONS, newer]);
    expect(await codeOf(migrateStore(store, MIGRATIONS))).toBe("STORE_SCHEMA_TOO_NEW/1");
  });

  it("a failing migration is rolled back whole: no table, no schema_migrations row", async () => {
    const { store } = await fresh();
    const broken: Migration = {
      id: "0100_broken",
      async up(db) {
        await db.schema.createTable("half").addColumn("x", "text").execute();
        throw new Error("boom");
      },
    };
    expect(await codeOf(migrateStore(store, [...MIGRATIONS, broken]))).toBe("STORE_MIGRATION_FAILED/1");
    const tables = await sql<{ name: string }>`select name from sqlite_master where type = 'table' and name = 'half'`.execute(store.db);
    expect(tables.rows).toEqual([]);
    const rows = await sql<{ id: string }>`select id from schema_migrations where id = '0100_broken'`.execute(store.db);
    expect(rows.rows).toEqual([]);
  });

  it("a SQLite path in a missing directory fails to open with STORE_OPEN_FAILED", async () => {
    expect(await codeOf(openStore("/nonexistent-dir-autonomy/x/cp.db"))).toBe("STORE_OPEN_FAILED/1");
  });
});
