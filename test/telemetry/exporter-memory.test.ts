/**
 * Bounded memory: a backlog of 200k small entries (a ~28 MB WAL) drains, in
 * priority order, with the live heap growing by a small, fixed amount: the
 * exporter streams the WAL (one read buffer, one batch, a bitset) and never
 * holds the backlog. The heap is sampled after forced GCs during the drain.
 * The receiver is ours (OTLP/HTTP JSON contract), in this process, reads only
 * the autonomy.seq / autonomy.priority attributes (its full contract check
 * runs in exporter-http.test.ts) and keeps only a byte per seq.
 */
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, describe, expect, it } from "vitest";
import { Exporter, OtlpHttpLogsSink, Wal, walPaths } from "../../src/telemetry/index.js";
import { startOtlpJsonLogsReceiver } from "../helpers/exporter-receivers.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const N = 200_000;
const silent = { warn: () => undefined, error: () => undefined };
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

function liveHeap(): number {
  gc();
  return process.memoryUsage().heapUsed;
}

describe("exporter memory", () => {
  it(`drains a ${N}-entry backlog with bounded heap growth`, async () => {
    const dir = await mkdtemp(join(tmpdir(), "exporter-mem-"));
    dirs.push(dir);
    const kinds = ["heartbeat", "decision", "lifecycle", "error"];
    const wal = await Wal.open(dir, { log: silent });
    for (let i = 0; i < N; i += 8192) {
      await Promise.all(Array.from({ length: Math.min(8192, N - i) }, (_, k) => wal.append({ kind: kinds[(i + k) % 4], i: i + k, node: "edge-042", msg: "tool call finished within budget", ok: true })));
    }
    await wal.close();
    const walBytes = (await stat(walPaths(dir).wal)).size;

    const seen = new Uint8Array(N + 1);
    let lastPriority = 9;
    let orderViolations = 0;
    const rx = await startOtlpJsonLogsReceiver({ record: false, light: true });
    rx.beforeAccept = (records) => {
      for (const r of records) {
        if (seen[r.seq] === 0) {
          const p = r.priority;
          if (p > lastPriority) orderViolations++;
          lastPriority = p;
        }
        seen[r.seq] = 1;
      }
    };
    const x = new Exporter({ wal: dir, sink: new OtlpHttpLogsSink({ url: rx.url, serviceName: "edge-042", timeoutMs: 10_000 }), nodeId: "edge-042", batchSize: 2000, maxInFlightBytes: 256 * 1024, log: silent });
    const base = liveHeap();
    let peak = base;
    const t0 = performance.now();
    const sampler = setInterval(() => {
      peak = Math.max(peak, liveHeap());
    }, 200);
    let r;
    try {
      r = await x.drainOnce();
    } finally {
      clearInterval(sampler);
      await x.close();
      await rx.close();
    }
    peak = Math.max(peak, liveHeap());
    const ms = performance.now() - t0;
    const growthMb = (peak - base) / 2 ** 20;
    console.log(`[exporter-memory] ${N} entries, WAL ${(walBytes / 2 ** 20).toFixed(1)} MiB, drained in ${(ms / 1000).toFixed(1)} s; live heap growth peak ${growthMb.toFixed(1)} MiB over ${(base / 2 ** 20).toFixed(1)} MiB`);
    expect(r).toMatchObject({ caughtUp: true, pos: N });
    expect(seen.subarray(1).every((b) => b === 1)).toBe(true);
    expect(orderViolations).toBe(0);
    // Loose bound, well under the WAL's own size: holding the backlog would cost several times the WAL.
    expect(growthMb).toBeLessThan(Math.min(24, walBytes / 2 ** 20));
  });
});
