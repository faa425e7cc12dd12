/**
 * Property: paging GET /v1/events (newest first) while other batches are
 * being ingested concurrently never repeats a row and never skips one that
 * existed when paging began, on SQLite and on PostgreSQL (real concurrency:
 * a connection pool).
 */
import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { EventPage } from "../../src/cpapi/index.js";
import { bearer, openTestCp } from "../helpers/cp-app.js";
import type { TestCp } from "../helpers/cp-app.js";
import type { Injected } from "../helpers/cp-fleet.js";
import { describeDialects } from "../helpers/databases.js";

describeDialects("event paging under concurrent ingest", (db) => {
  let cp: TestCp;
  beforeAll(async () => {
    cp = await openTestCp({ location: await db.fresh() });
  });
  afterAll(async () => {
    await cp.close();
  });

  const ingest = async (node: string, ids: readonly string[]): Promise<void> => {
    if (ids.length === 0) return;
    const events = ids.map((id) => ({ event_id: id, event_type: "t", node_id: node, timestamp: "2026-12-05T10:00:00Z" }));
    const r = await cp.app.inject({ method: "POST", url: "/v1/events", headers: bearer(cp.owner), payload: { events } });
    expect(r.statusCode, r.body).toBe(200);
  };

  it("never repeats a row and never skips one that existed when paging began", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 1, max: 9 }), fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 15 }), async (initial, limit, inserts) => {
        const node = `p-${++run}`;
        let made = 0;
        const fresh = (n: number): string[] => Array.from({ length: n }, () => `${node}:${++made}`);
        const existing = fresh(initial);
        await ingest(node, existing);
        const seen: { id: string; seq: number }[] = [];
        let cursor: string | null = null;
        for (let k = 0; ; k++) {
          if (k > 200) throw new Error(`paging does not end: ${k} pages of ${limit} for ${made} events`);
          const q = `node_id=${node}&limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
          // The page and a new batch race each other.
          const [res]: [Injected, void] = await Promise.all([cp.app.inject({ method: "GET", url: `/v1/events?${q}`, headers: bearer(cp.owner) }), ingest(node, fresh(inserts[k] ?? 0))]);
          expect(res.statusCode, res.body).toBe(200);
          const page: EventPage = res.json<EventPage>();
          seen.push(...page.events.map((e) => ({ id: e.event_id, seq: e.ingest_seq })));
          cursor = page.next_cursor;
          if (cursor === null) break;
        }
        const ids = seen.map((s) => s.id);
        expect(new Set(ids).size).toBe(ids.length); // no repeats
        for (const id of existing) expect(ids).toContain(id); // no skips
        for (let i = 1; i < seen.length; i++) expect(seen[i - 1]!.seq).toBeGreaterThan(seen[i]!.seq); // newest first
      }),
      { numRuns: 30 },
    );
  });
});
