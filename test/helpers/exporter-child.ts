/**
 * Child process for test/telemetry/exporter-crash.test.ts: runs the WAL exporter on
 * <dir> against the OTLP/HTTP receiver at <url> until it is killed, or with
 * --once until it has caught up with <target> committed entries (then exit 0).
 * Prints `started` once it has its lock.
 *
 *   node --import tsx test/helpers/exporter-child.ts <dir> <url> [--once <target>]
 */
import { Exporter, OtlpHttpLogsSink } from "../../src/telemetry/index.js";

const [dir, url, mode, targetText] = process.argv.slice(2);
if (!dir || !url) {
  process.stderr.write("usage: exporter-child.ts <dir> <url> [--once <target>]\n");
  process.exit(2);
}
const silent = { warn: () => undefined, error: (o: Record<string, unknown>, m: string) => void process.stderr.write(`${m} ${JSON.stringify(o)}\n`) };
const x = new Exporter({ wal: dir, sink: new OtlpHttpLogsSink({ url, serviceName: "node-k", timeoutMs: 5_000 }), nodeId: "node-k", batchSize: 29, retry: { baseMs: 5, maxMs: 50, jitter: 0.5 }, pollMs: 5, log: silent });
if (mode === "--once") {
  const target = Number(targetText);
  for (;;) {
    const r = await x.drainOnce();
    if (r.caughtUp && r.pos >= target) break;
    if (r.error) await new Promise((w) => setTimeout(w, 10));
  }
  await x.close();
  process.stdout.write(`done ${x.status().pos}\n`);
} else {
  await x.drainOnce({ maxBatches: 0 });
  process.stdout.write("started\n");
  await x.run(new AbortController().signal);
}
