/**
 * Property (fast-check): for random interleavings of appends, sink failures
 * (down, failing the next k sends, accepting a batch but losing the answer),
 * partial drains and exporter restarts (in-memory state lost, as in a crash),
 * on real WAL files:
 *   - telemetry.pos only moves forward and never passes a seq the sink has
 *     not acknowledged (checked after every step and inside every send);
 *   - once drained, every committed seq was delivered at least once and
 *     pos = the committed seq.
 * The sink here is in memory (no HTTP): the HTTP paths are covered by
 * exporter-http.test.ts against real servers.
 */
import fc from "fast-check";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Exporter, Wal, readPos } from "../../src/telemetry/index.js";
import type { Sink } from "../../src/telemetry/index.js";
import { SinkUnavailable } from "../../src/telemetry/exporter/sinks.js";
import type { ExportRecord } from "../../src/telemetry/exporter/record.js";

const silent = { warn: () => undefined, error: () => undefined, info: () => undefined };

type Cmd =
  | { t: "append"; kinds: number[] }
  | { t: "down" }
  | { t: "up" }
  | { t: "failNext"; k: number }
  | { t: "loseAnswer" }
  | { t: "drain"; batches: number }
  | { t: "restart" };

const KINDS: Record<string, unknown>[] = [{ kind: "heartbeat" }, { kind: "lifecycle" }, { type: "ai.policy.decision" }, { kind: "error" }, { kind: "x", priority: 7 }];

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant("append" as const), kinds: fc.array(fc.integer({ min: 0, max: KINDS.length - 1 }), { minLength: 1, maxLength: 25 }) }) },
  { weight: 1, arbitrary: fc.constant({ t: "down" as const }) },
  { weight: 1, arbitrary: fc.constant({ t: "up" as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("failNext" as const), k: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.constant({ t: "loseAnswer" as const }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant("drain" as const), batches: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 1, arbitrary: fc.constant({ t: "restart" as const }) },
);

class ModelSink implements Sink {
  readonly name = "model";
  readonly acked = new Set<number>();
  readonly delivered = new Set<number>();
  down = false;
  failNext = 0;
  loseAnswer = false;
  violations: string[] = [];
  constructor(readonly dir: string) {}

  prefix(): number {
    let p = 0;
    while (this.acked.has(p + 1)) p++;
    return p;
  }

  async send(batch: readonly ExportRecord[]): Promise<void> {
    const p = await readPos(this.dir);
    const pos = p.kind === "ok" ? p.pos : 0;
    if (pos > this.prefix()) this.violations.push(`in send: pos ${pos} > acknowledged prefix ${this.prefix()}`);
    if (this.down) throw new SinkUnavailable("down", "network");
    if (this.failNext > 0) {
      this.failNext--;
      throw new SinkUnavailable("503", "status", { status: 503 });
    }
    for (const r of batch) this.delivered.add(r.seq);
    if (this.loseAnswer) {
      this.loseAnswer = false;
      throw new SinkUnavailable("answer lost", "timeout");
    }
    for (const r of batch) this.acked.add(r.seq);
  }
}

async function posOf(dir: string): Promise<number> {
  const p = await readPos(dir);
  return p.kind === "ok" ? p.pos : 0;
}

describe("exporter property: at-least-once, pos monotonic and never ahead of the confirmed prefix", () => {
  it("holds for random appends, failures and restarts", async () => {
    let run = 0;
    await fc.assert(fc.asyncProperty(fc.array(cmdArb, { minLength: 1, maxLength: 25 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 40, max: 400 }), async (cmds, batchSize, maxBytes) => {
      const dir = await mkdtemp(join(tmpdir(), `exporter-prop-${run++}-`));
      const wal = await Wal.open(dir, { log: silent });
      const sink = new ModelSink(dir);
      const make = (): Exporter => new Exporter({ wal: dir, sink, nodeId: "n", batchSize, maxInFlightBytes: maxBytes, log: silent });
      let x = make();
      let lastPos = 0;
      const check = async (where: string): Promise<void> => {
        const pos = await posOf(dir);
        expect(pos, `${where}: pos went backwards`).toBeGreaterThanOrEqual(lastPos);
        expect(pos, `${where}: pos ahead of the acknowledged prefix`).toBeLessThanOrEqual(sink.prefix());
        lastPos = pos;
      };
      try {
        for (const [i, c] of cmds.entries()) {
          switch (c.t) {
            case "append": await Promise.all(c.kinds.map((k, j) => wal.append({ ...KINDS[k], i, j }))); break;
            case "down": sink.down = true; break;
            case "up": sink.down = false; break;
            case "failNext": sink.failNext += c.k; break;
            case "loseAnswer": sink.loseAnswer = true; break;
            case "drain": await x.drainOnce({ maxBatches: c.batches }); break;
            case "restart": await x.close(); x = make(); break;
          }
          await check(`after ${i}:${c.t}`);
        }
        // Recovery: the sink comes back for good; drain until caught up.
        sink.down = false;
        sink.failNext = 0;
        sink.loseAnswer = false;
        const committed = wal.lastSeq;
        for (let guard = 0; ; guard++) {
          expect(guard).toBeLessThan(10_000);
          const r = await x.drainOnce();
          if (r.caughtUp) break;
        }
        await check("final");
        for (let s = 1; s <= committed; s++) expect(sink.delivered.has(s), `seq ${s} never delivered`).toBe(true);
        expect(await posOf(dir)).toBe(committed);
        expect(sink.violations).toEqual([]);
      } finally {
        await x.close();
        await wal.close();
        await rm(dir, { recursive: true, force: true });
      }
    }), { numRuns: 60 });
  });
});
