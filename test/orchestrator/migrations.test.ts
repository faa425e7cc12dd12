/** Migrations on both dialects: once each, refused when the database is newer, and two servers starting at once (PostgreSQL). */
import { afterEach, expect, it } from "vitest";
import { sql } from "kysely";
import { MIGRATIONS, migrateStore, openStore } from "../../src/orchestrator/index.js";
import type { Migration, Store } from "../../src/orchestrator/index.js";
import { codeOf } from "../helpers/caught.js";
import { describeDialects } from "../helpers/databases.js";

describeDialects("migrations", (db) => {
  const stores: Store[] = [];
  const open = async (location: string): Promise<Store> => {
    const s = await openStore(location);
    stores.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close().catch(() => undefined);
  });

  it("applies each migration once and records it", async () => {
    const store = await open(await db.fresh());
    expect((await migrateStore(store, MIGRATIONS)).applied).toEqual(MIGRATIONS.map((m) => m.id));
    expect((await migrateStore(store, MIGRATIONS)).applied).toEqual([]);
    const rows = await sql<{ id: string }>`select id from schema_migrations order by id`.execute(store.db);
    expect(rows.rows.map((r) => r.id)).toEqual(MIGRATIONS.map((m) => m.id));
  });

  it("refuses to start against a database a newer build migrated (STORE_SCHEMA_TOO_NEW)", async () => {
    const store = await open(await db.fresh());
    const future: Migration = { id: "9999_future", up: () => Promise.resolve() };
    await migrateStore(store, [...MIGRATIONS, future]);
    expect(await codeOf(migrateStore(store, MIGRATIONS))).toBe("STORE_SCHEMA_TOO_NEW/1");
  });

  if (db.dialect === "postgres") {
    it("two servers migrating one empty database at once apply each migration exactly once", async () => {
      const location = await db.fresh();
      const [a, b] = [await open(location), await open(location)];
      let runs = 0;
      const counted: Migration[] = MIGRATIONS.map((m) => ({ id: m.id, up: async (k, d) => void (runs++, await m.up(k, d)) }));
      const reports = await Promise.all([migrateStore(a, counted), migrateStore(b, counted)]);
      expect(runs).toBe(MIGRATIONS.length);
      expect([...reports[0].applied, ...reports[1].applied].sort()).toEqual(MIGRATIONS.map((m) => m.id).sort());
    });
  }
});
