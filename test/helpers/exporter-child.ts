/**
 * Child process running the WAL exporter on <dir> until it is killed, or with
 * --once until it has caught up with <target> committed entries (then exit 0,
 * printing `done <pos>`). Prints `started` once it holds the exporter lock.
 *
 *   node --import tsx test/helpers/exporter-child.ts otlp <dir> <url> [--once <target>]
 *     the OTLP/HTTP receiver at <url> (test/telemetry/exporter-crash.test.ts)
 *   AUTONOMY_NODE_CREDENTIAL=… node --import tsx test/helpers/exporter-child.ts cp <dir> <url> <node_id> [--once <target>]
 *     the control plane at <url> (POST /v1/events through the cpapi client) with the node
 *     credential from the environment, not an argument (it would show in `ps`)
 *     (test/telemetry/exporter-control-plane.test.ts)
 */
import { Exporter, OtlpHttpLogsSink } from "../../src/telemetry/index.js";
import type { Sink } from "../../src/telemetry/index.js";
import { ControlPlaneEventsSink } from "../../src/telemetry/exporter/sinks.js";

const USAGE = "usage: exporter-child.ts otlp <dir> <url> [--once <target>] | cp <dir> <url> <node_id> [--once <target>]\n";
const [kind, ...rest] = process.argv.slice(2);
const [dir, url, nodeId, mode, targetText] = kind === "cp" ? rest : [rest[0], rest[1], "node-k", rest[2], rest[3]];
if ((kind !== "otlp" && kind !== "cp") || !dir || !url || !nodeId) {
  process.stderr.write(USAGE);
  process.exit(2);
}
const sink: Sink = kind === "cp"
  ? new ControlPlaneEventsSink({ url, token: process.env.AUTONOMY_NODE_CREDENTIAL, timeoutMs: 5_000 })
  : new OtlpHttpLogsSink({ url, serviceName: nodeId, timeoutMs: 5_000 });
const silent = { warn: () => undefined, error: (o: Record<string, unknown>, m: string) => void process.stderr.write(`${m} ${JSON.stringify(o)}\n`) };
const x = new Exporter({ wal: dir, sink, nodeId, batchSize: 29, retry: { baseMs: 5, maxMs: 50, jitter: 0.5 }, pollMs: 5, log: silent });
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
