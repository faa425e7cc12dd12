import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PowerLossFs } from "../../../test/helpers/power-loss-fs.js";
import { EdgeError } from "../errors.js";
import { STORE_BLOCK_BYTES, openSegmentStore } from "./index.js";

const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");
const B = STORE_BLOCK_BYTES;
/** The model's own statement of the charge: whole blocks, at least one. */
const cost = (size: number): number => Math.max(B, Math.ceil(size / B) * B);

const op = fc.oneof(
  fc.record({ t: fc.constant("put" as const), seed: fc.integer({ min: 0, max: 30 }), size: fc.integer({ min: 0, max: 3 * B }), allow: fc.integer({ min: 0, max: 3 }) }),
  fc.record({ t: fc.constant("get" as const), pick: fc.nat() }),
  fc.record({ t: fc.constant("remove" as const), pick: fc.nat() }),
);

/**
 * The store against a reference model of LRU-with-ceiling: after every
 * operation the same segments, in the same recency order; each put evicts
 * exactly the shortest least-recently-used prefix of the allowed segments that
 * makes room, or nothing at all (and fails) when no such prefix exists.
 */
describe("segment store: LRU and ceiling against a reference model", () => {
  it("property: same contents, same evictions, usage ≤ ceiling, every eviction allowed", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 8 * B }), fc.array(op, { maxLength: 40 }), async (ceiling, ops) => {
        const fs = new PowerLossFs();
        await fs.mkdirDurable("/s");
        const store = await openSegmentStore({ dir: "/s/seg", ceilingBytes: ceiling, fs, clock: { now: () => 0 } });
        const model: { id: string; size: number }[] = []; // least recently used first
        const touch = (id: string): void => {
          const i = model.findIndex((m) => m.id === id);
          if (i >= 0) model.push(...model.splice(i, 1));
        };
        for (const o of ops) {
          if (o.t === "put") {
            const bytes = new Uint8Array(o.size).fill(o.seed);
            const id = sha(bytes);
            // allow: 0 none, 1 all, 2 ids starting with a digit, 3 ids starting with a letter
            const allowed = (x: string): boolean => o.allow === 1 || (o.allow === 2 && /^[0-9]/.test(x)) || (o.allow === 3 && /^[a-f]/.test(x));
            let expected: { ok: boolean; evicted: string[] };
            if (model.some((m) => m.id === id)) expected = { ok: true, evicted: [] };
            else {
              const need = model.reduce((s, m) => s + cost(m.size), 0) + cost(o.size) - ceiling;
              const evicted: string[] = [];
              let freed = 0;
              for (const m of cost(o.size) <= ceiling ? model : []) {
                if (freed >= need) break;
                if (!allowed(m.id)) continue;
                evicted.push(m.id);
                freed += cost(m.size);
              }
              expected = freed >= need ? { ok: true, evicted } : { ok: false, evicted: [] };
            }
            try {
              const r = await store.put(bytes, "data", allowed);
              expect(expected.ok).toBe(true);
              expect(r.evicted.map((e) => e.id)).toEqual(expected.evicted);
              for (const e of r.evicted) model.splice(model.findIndex((m) => m.id === e.id), 1);
              if (r.created) model.push({ id, size: o.size });
              else touch(id);
            } catch (e) {
              expect(e instanceof EdgeError && e.code === "STORAGE_CEILING_EXCEEDED").toBe(true);
              expect(expected.ok).toBe(false);
            }
          } else if (model.length > 0) {
            const target = model[o.pick % model.length] as { id: string; size: number };
            if (o.t === "get") {
              expect(sha(await store.get(target.id))).toBe(target.id);
              touch(target.id);
            } else {
              expect(await store.remove(target.id, "purged")).toMatchObject({ id: target.id, bytes: target.size });
              model.splice(model.indexOf(target), 1);
            }
          }
          expect(store.list().map((s) => s.id)).toEqual(model.map((m) => m.id));
          const used = model.reduce((s, m) => s + m.size, 0);
          const disk = model.reduce((s, m) => s + cost(m.size), 0);
          expect(store.usage()).toEqual({ used_bytes: used, disk_bytes: disk, ceiling_bytes: ceiling, segments: model.length });
          expect(disk).toBeLessThanOrEqual(ceiling);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("serialises concurrent puts: the ceiling holds and the same bytes are created once", async () => {
    const fs = new PowerLossFs();
    await fs.mkdirDurable("/s");
    const store = await openSegmentStore({ dir: "/s/seg", ceilingBytes: 10 * B, fs });
    const results = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => store.put(new Uint8Array(100).fill(i % 15), "data")));
    const created = results.filter((r) => r.status === "fulfilled" && r.value.created).length;
    const refused = results.filter((r) => r.status === "rejected" && r.reason instanceof EdgeError && r.reason.code === "STORAGE_CEILING_EXCEEDED").length;
    expect(created).toBe(10);
    expect(refused).toBe(10); // segments 10..14, each twice
    expect(results.length - created - refused).toBe(10); // the repeats of 0..9: created: false
    expect(store.usage()).toEqual({ used_bytes: 1000, disk_bytes: 10 * B, ceiling_bytes: 10 * B, segments: 10 });
  });
});
