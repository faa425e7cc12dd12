import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import { hostname } from "node:os";
import { ExportError, Exporter, WalFileReader, eventNameOf, priorityOf, sinkFor } from "../../telemetry/index.js";
import type { DrainResult, ExporterLogger, ExporterStatus } from "../../telemetry/index.js";
import { UsageError, readInputFile } from "../../lib/index.js";
import { readControlPlane } from "../../node/index.js";
import { createLogger } from "../../observability/index.js";
import { action } from "../run.js";
import { emit } from "../output.js";
import { parseHttpUrl } from "../common.js";

function parseCount(min: number): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`must be an integer ≥ ${min}`);
    return n;
  };
}

interface DrainFlags {
  dir: string;
  otlpUrl?: string;
  otlpCompression?: "gzip" | "none";
  controlPlaneUrl?: string;
  stateRoot?: string;
  serverCa?: string;
  nodeId: string;
  once?: boolean;
  json?: boolean;
  batchSize: number;
  maxInflightBytes: number;
  timeoutMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  pollMs: number;
}

function progressLine(s: ExporterStatus, drained: number): string {
  return `drained ${drained}, backlog ${s.backlog} (pos ${s.pos} of ${s.committed}${s.dead_lettered > 0 ? `, dead-lettered ${s.dead_lettered}` : ""}${s.last_error && s.state === "backoff" ? `; retrying: ${s.last_error.message}` : ""})`;
}

/**
 * `--state-root`: the control plane the node enrolled with (or `--control-plane-url`),
 * as that node, with its credential — sent only to the server that issued it.
 */
async function enrolledDestination(flags: DrainFlags): Promise<{ url?: string; token?: string; nodeId: string }> {
  if (flags.stateRoot === undefined) return { ...(flags.controlPlaneUrl ? { url: flags.controlPlaneUrl } : {}), nodeId: flags.nodeId };
  const file = await readControlPlane(flags.stateRoot);
  if (file === undefined) throw new UsageError(`the node in ${flags.stateRoot} has not enrolled with a control plane (no control-plane.json)`, "start it once with `autonomy runtime start --server URL --enroll-token T`, or drop --state-root");
  const url = flags.controlPlaneUrl ?? file.server;
  const same = new URL(url).href.replace(/\/+$/, "") === new URL(file.server).href.replace(/\/+$/, "");
  return { url, nodeId: file.node_id, ...(same ? { token: file.credential } : {}) };
}

async function drain(flags: DrainFlags): Promise<void> {
  const cp = await enrolledDestination(flags);
  if (flags.serverCa !== undefined && cp.url === undefined) throw new UsageError("--server-ca needs a control plane (--control-plane-url or --state-root)", "drop --server-ca, or name the control plane");
  // As `runtime start --server-ca`: the only CA trusted for the control plane's https certificate.
  const ca = flags.serverCa !== undefined ? (await readInputFile(flags.serverCa, "control plane CA (--server-ca)")).toString("utf8") : undefined;
  const sink = sinkFor({
    nodeId: cp.nodeId, timeoutMs: flags.timeoutMs, ...(flags.otlpCompression ? { compression: flags.otlpCompression } : {}), ...(flags.otlpUrl ? { otlpUrl: flags.otlpUrl } : {}),
    ...(cp.url ? { controlPlaneUrl: cp.url, ...(cp.token !== undefined ? { controlPlaneToken: cp.token } : {}), ...(ca !== undefined ? { controlPlaneCa: ca } : {}) } : {}),
  });
  if (!sink) throw new UsageError("no destination", "give --otlp-url (an OTLP/HTTP collector) and/or --control-plane-url / --state-root");
  const log: ExporterLogger = createLogger({ name: "autonomy.telemetry.exporter", level: flags.json ? "warn" : "info" });
  const exporter = new Exporter({
    wal: flags.dir, sink, nodeId: cp.nodeId, batchSize: flags.batchSize, maxInFlightBytes: flags.maxInflightBytes,
    retry: { baseMs: flags.retryBaseMs, maxMs: flags.retryMaxMs }, pollMs: flags.pollMs, log,
  });
  let drained = 0;
  try {
    if (flags.once) {
      let last: DrainResult | undefined;
      for (;;) {
        // Slices of 20 batches so a long backlog shows progress.
        last = await exporter.drainOnce({ maxBatches: 20 });
        drained += last.confirmed;
        if (last.caughtUp || last.error) break;
        if (!flags.json) process.stdout.write(`${progressLine(exporter.status(), drained)}\n`);
      }
      const status = exporter.status();
      if (last.error) {
        throw new ExportError("EXPORT_INCOMPLETE", `drained ${drained}, backlog ${status.backlog}: ${last.error.message}`,
          "nothing is lost: the backlog stays in the WAL and telemetry.pos only covers confirmed entries; fix the receiver and run again (or run without --once to retry with backoff)",
          { details: { drained, status } });
      }
      emit({ ok: true, drained, status }, flags, () => progressLine(status, drained));
      return;
    }
    const ac = new AbortController();
    const stop = (): void => ac.abort();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    let lastPrinted = -1;
    try {
      await exporter.run(ac.signal, {
        onDrain: (r) => {
          drained += r.confirmed;
          if (r.confirmed === 0 && lastPrinted === drained) return;
          lastPrinted = drained;
          const s = exporter.status();
          process.stdout.write(flags.json ? `${JSON.stringify({ version: 1, ok: true, drained, status: s })}\n` : `${progressLine(s, drained)}\n`);
        },
      });
    } finally {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    }
  } finally {
    await exporter.close();
  }
}

/** `telemetry export`: committed entries as JSON lines with their drain priority, read-only. */
async function exportJsonl(dir: string, from: number): Promise<void> {
  const reader = new WalFileReader(dir);
  const committed = await reader.committed();
  for await (const page of reader.scan(from, committed)) {
    const lines = page.map((e) => `${JSON.stringify({ seq: e.seq, priority: priorityOf(e.event), event_name: eventNameOf(e.event), event: e.event })}\n`).join("");
    if (!process.stdout.write(lines)) await new Promise<void>((resolve) => process.stdout.once("drain", () => resolve()));
  }
}

export function registerTelemetry(program: Command): void {
  const telemetry = program.command("telemetry").description("drain the telemetry WAL to OpenTelemetry (OTLP/HTTP) and the control plane; export it as JSON lines");

  telemetry.command("drain")
    .description("deliver committed WAL entries (highest priority first, at least once) and advance telemetry.pos over what the receivers confirmed")
    .requiredOption("--dir <dir>", "WAL directory")
    .option("--otlp-url <url>", "OTLP/HTTP collector base URL (records go to <url>/v1/logs); headers from OTEL_EXPORTER_OTLP_HEADERS", parseHttpUrl)
    .addOption(new Option("--otlp-compression <c>", "gzip each OTLP request (default: OTEL_EXPORTER_OTLP_COMPRESSION, else none)").choices(["gzip", "none"]))
    .option("--control-plane-url <url>", "control plane base URL (events go to <url>/v1/events; no credential unless --state-root enrolled with it)", parseHttpUrl)
    .option("--state-root <dir>", "send control-plane events as the node enrolled in this state root: to its control plane (unless --control-plane-url), as its node id, with its node credential (control-plane.json)")
    .option("--server-ca <file>", "trust this PEM CA (and only it) for the control plane's https certificate, as `runtime start --server-ca`")
    .option("--node-id <id>", "this node's id (OTLP service.name, control-plane node_id)", hostname())
    .option("--once", "drain until caught up, then exit 0; exit 1 (nothing lost) if a receiver fails")
    .option("--batch-size <n>", "records per request", parseCount(1), 512)
    .option("--max-inflight-bytes <n>", "WAL payload bytes per request", parseCount(1), 1024 * 1024)
    .option("--timeout-ms <n>", "per-request timeout", parseCount(1), 10_000)
    .option("--retry-base-ms <n>", "first retry delay", parseCount(1), 250)
    .option("--retry-max-ms <n>", "longest retry delay", parseCount(1), 30_000)
    .option("--poll-ms <n>", "how often to look for new entries once caught up", parseCount(1), 500)
    .option("--json", "machine-readable output (one JSON document; JSON lines without --once)")
    .action(action(async (flags: DrainFlags) => drain(flags)));

  telemetry.command("export")
    .description("print committed entries as JSON lines {seq, priority, event_name, event} (read-only: safe next to a live writer)")
    .requiredOption("--dir <dir>", "WAL directory")
    .option("--from <seq>", "first seq to print", parseCount(0), 1)
    .action(action(async (flags: { dir: string; from: number }) => exportJsonl(flags.dir, flags.from)));
}
