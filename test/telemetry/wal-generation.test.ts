/**
 * WAL generations end to end (docs/wal.md "Generations"; seed 001 S11): after an
 * operator reset the WAL restarts at seq 1 in a new generation, the exporter
 * ignores the old generation's telemetry.pos (without deleting it: recovery never
 * touches it), and a receiver that deduplicates on the event id keeps the new
 * generation's events. With the old `(node_id, seq)` ids it dropped them.
 */
import { mkdtemp, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Exporter, Wal, confirmedPos, readPos, walPaths } from "../../src/telemetry/index.js";
import { ControlPlaneEventsSink } from "../../src/telemetry/exporter/sinks.js";
import { startControlPlaneEventsContractServer } from "../helpers/exporter-receivers.js";

const silent = { warn: () => undefined, error: () => undefined, info: () => undefined };
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function appendAll(dir: string, events: Record<string, unknown>[], env: Record<string, string> = {}): Promise<Wal> {
  const wal = await Wal.open(dir, { log: silent, env });
  for (const e of events) await wal.append(e);
  await wal.close();
  return wal;
}

describe("WAL generations across an operator reset", () => {
  it("a deduplicating receiver keeps the new generation's events; the old position is ignored, not deleted", async () => {
    const root = await mkdtemp(join(tmpdir(), "wal-gen-"));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    const dir = join(root, "wal");
    const cp = await startControlPlaneEventsContractServer();
    cleanups.push(() => cp.close());
    const drain = async (): Promise<void> => {
      const x = new Exporter({ wal: dir, sink: new ControlPlaneEventsSink({ url: cp.url, timeoutMs: 5_000 }), nodeId: "edge-1", log: silent, pollMs: 10 });
      expect(await x.drainOnce()).toMatchObject({ caughtUp: true });
      await x.close();
    };

    const before = await appendAll(dir, [{ kind: "lifecycle", n: 1 }, { kind: "lifecycle", n: 2 }, { kind: "lifecycle", n: 3 }]);
    await drain();
    expect(cp.stored).toHaveLength(3);
    expect(await readPos(dir)).toEqual({ kind: "ok", pos: 3, generation: before.generation });

    // The operator resets telemetry: the WAL is emptied, the node keeps its other state.
    await writeFile(join(dir, "runtime.db"), "x");
    await unlink(walPaths(dir).wal);
    await unlink(walPaths(dir).safeSeq);
    const posBefore = await readFile(walPaths(dir).pos);
    const after = await appendAll(dir, [4, 5, 6, 7, 8].map((n) => ({ kind: "lifecycle", n })), { AUTONOMYOPS_WAL_OPERATOR_RESET: "1" });
    expect(after.recovered.mode).toBe("operator_reset");
    expect(after.generation).not.toBe(before.generation);
    expect(await readFile(walPaths(dir).pos)).toEqual(posBefore); // S11: recovery left it as it was
    expect(await confirmedPos(dir)).toBe(0); // ...and reclamation does not follow it

    await drain();
    expect(cp.deduped).toBe(0);
    // All five new events, from seq 1: the old position (3, another generation) was not followed.
    expect(cp.stored.map((e) => [Number(e.event_id.split(":").at(-1)), (e.attributes as { n: number }).n])).toEqual([[1, 1], [2, 2], [3, 3], [1, 4], [2, 5], [3, 6], [4, 7], [5, 8]]);
    expect(new Set(cp.stored.map((e) => e.event_id)).size).toBe(8);
    expect(cp.stored.at(-1)?.event_id).toBe(`edge-1:wal:${after.generation}:5`);
    expect(await readPos(dir)).toEqual({ kind: "ok", pos: 5, generation: after.generation });
  });
});
