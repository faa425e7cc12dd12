/**
 * Child process for test/telemetry/exporter-control-plane.test.ts: the WAL
 * exporter on <dir>, delivering to the control plane at <url> (POST /v1/events
 * through the cpapi client) with the node credential in AUTONOMY_NODE_CREDENTIAL
 * (an environment variable, not an argument: it would show in `ps`), until it is
 * killed, or with --once until it has caught up with <target> committed entries
 * (then exit 0). Prints `started` once it holds the exporter lock.
 *
 *   AUTONOMY_NODE_CREDENTIAL=… node --import tsx test/helpers/exporter-cp-child.ts <dir> <url> <node_id> [--once <target>]
 */
import { Exporter } from "../../src/telemetry/index.js";
import { ControlPlaneEventsSink } from "../../src/telemetry/exporter/sinks.js";

const [dir, url, nodeId, mode, targetText] = process.argv.slice(2);
if (!dir || !url || !nodeId) {
  process.stderr.write("usage: exporter-cp-child.ts <dir> <url> <node_id> [--once <target>]\n");
  process.exit(2);
}
const silent = { warn: () => undefined, error: (o: Record<string, unknown>, m: string) => void process.stderr.write(`${m} ${JSON.stringify(o)}\n`) };
const sink = new ControlPlaneEventsSink({ url, token: process.env.AUTONOMY_NODE_CREDENTIAL, timeoutMs: 5_000 });
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
