import { Option, InvalidArgumentError } from "commander";
import type { Command } from "commander";
import { randomInt } from "node:crypto";
import { parseFaults, parseLabels, progressLine, runFleet } from "../../fleetsim/index.js";
import type { FleetSummary } from "../../fleetsim/index.js";
import { UsageError } from "../../lib/index.js";
import { loadPublicKey, parseDuration } from "../../sign/index.js";
import { trustedKeys } from "../../supplychain/index.js";
import { action, outcome } from "../run.js";
import { emit } from "../output.js";
import { parseHttpUrl } from "../common.js";

/** Virtual devices one process runs at most (memory ~ a few hundred KiB each at the defaults). */
const MAX_DEVICES = 10_000;
/** A run is bounded whatever is asked: an hour. */
const MAX_DURATION_MS = 3_600_000;

function intIn(min: number, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    return n;
  };
}

function durationIn(min: number, max: number): (v: string) => number {
  return (v) => {
    let ms: number;
    try {
      ms = parseDuration(v);
    } catch {
      throw new InvalidArgumentError("must be a duration such as 500ms, 30s, 5m");
    }
    if (ms < min || ms > max) throw new InvalidArgumentError(`must be from ${min} ms to ${max / 1000} s`);
    return ms;
  };
}

function parseRate(v: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)%$/.exec(v);
  const r = m ? Number(m[1]) / 100 : NaN;
  if (!(r >= 0 && r <= 1)) throw new InvalidArgumentError("must be a percentage such as 1%");
  return r;
}

const collect = (v: string, prev: string[]): string[] => [...prev, ...v.split(",").filter((s) => s !== "")];

interface FleetFlags {
  devices: number;
  server?: string;
  token?: string;
  channel: string;
  labels: string[];
  faults: string;
  seed?: number;
  duration: number;
  untilConverged?: boolean;
  trustKey: string[];
  threshold: number;
  repository: string;
  pollInterval: number;
  maxInflight: number;
  maxTransportErrors: number;
  nodePrefix?: string;
  allowRemote?: boolean;
  json?: boolean;
}

export function renderFleet(s: FleetSummary): string {
  const kv = (r: Record<string, number>): string => Object.entries(r).map(([k, v]) => `${k} ${v}`).join(", ") || "-";
  const faulty = Object.entries(s.faults).filter(([, ids]) => ids.length > 0).map(([k, ids]) => `${k} ${ids.length}`).join(", ") || "none";
  return [
    `${s.devices} devices (${s.node_prefix}-NNNN) against ${s.server}, channel ${s.channel}, seed ${s.seed}, ${(s.elapsed_ms / 1000).toFixed(1)} s`,
    `faults: ${faulty}`,
    `latest release: ${s.latest_release_id ?? "none"}${s.converged === null ? "" : s.converged ? " (converged)" : " (NOT converged)"}`,
    `releases: ${kv(s.releases)}`,
    `last phase: ${kv(s.phases)}`,
    `requests: ${s.requests.total} (p50 ${s.requests.p50_ms ?? "-"} ms, p99 ${s.requests.p99_ms ?? "-"} ms), transport errors ${s.requests.transport_errors}`,
    `errors: ${kv(s.errors)}`,
    `acks ${s.acks.sent} (failed ${s.acks.failed}), heartbeats ${s.heartbeats.sent} (failed ${s.heartbeats.failed}), events sent ${s.events.sent} (inserted ${s.events.inserted}, pending ${s.events.pending}, dropped ${s.events.dropped})`,
    `memory: rss ${(s.memory.rss_bytes / 2 ** 20).toFixed(0)} MiB, heap ${(s.memory.heap_used_bytes / 2 ** 20).toFixed(0)} MiB`,
    ...(s.failure ? [`FAIL ${s.failure.code}: ${s.failure.message}`] : []),
  ].join("\n");
}

async function trustFrom(flags: FleetFlags): Promise<{ trusted: ReturnType<typeof trustedKeys>; threshold: number; repository: string }> {
  if (flags.trustKey.length === 0) throw new UsageError("no --trust-key given: every device verifies the release statement itself", "pass the release public key(s) with --trust-key release.pub");
  const keys = await Promise.all(flags.trustKey.map((p) => loadPublicKey(p)));
  const trusted = trustedKeys(keys);
  if (flags.threshold > trusted.length) throw new UsageError(`--threshold ${flags.threshold} is more than the ${trusted.length} distinct --trust-key key(s)`, "lower --threshold or add keys");
  return { trusted, threshold: flags.threshold, repository: flags.repository };
}

export function registerLabFleet(lab: Command): void {
  lab.command("fleet")
    .description(
      "run N virtual nodes in this process against a control plane (HTTP only): each enrolls with its own single-use token, heartbeats, polls the latest release " +
        "with the real poller's timing, verifies the release statement itself, simulates the activation, acks every phase and sends lifecycle, decision and tool-result events. " +
        "Faults per device from the seed. Exit 0, 1 on transport errors over --max-transport-errors (or not converged with --until-converged), 2 on bad flags",
    )
    .requiredOption("--devices <n>", "number of virtual devices", intIn(1, MAX_DEVICES))
    .option("--server <url>", "the control plane (or AUTONOMY_SERVER); loopback only unless --allow-remote", parseHttpUrl)
    .option("--token <token>", "operator token with node:enroll (or AUTONOMY_TOKEN; a flag shows in `ps`)")
    .requiredOption("--trust-key <file>", "release public key (PEM) every device trusts; repeat for several", collect, [])
    .requiredOption("--repository <name>", "the signed repository the devices expect (host/path, as the statement names it)")
    .option("--threshold <n>", "signatures by this many distinct trusted keys are needed", intIn(1, 32), 1)
    .option("--channel <name>", "release channel to follow", "stable")
    .option("--labels <k=v>", "labels of every device (pinned in its enrollment token); repeat or comma-separate", collect, [])
    .option("--faults <spec>", "fault shares: fail, hang, corrupt, misbehave, offline, e.g. fail=5%,hang=2%,corrupt=1%,misbehave=10%", "")
    .option("--seed <n>", "seed of the fault assignment and every device's jitter (default random; printed)", intIn(0, 2 ** 32 - 1))
    .addOption(new Option("--duration <duration>", "how long to run; with --until-converged, the longest").argParser(durationIn(1000, MAX_DURATION_MS)).default(60_000, "60s"))
    .option("--until-converged", "stop as soon as every device has settled on the latest release and sent its events (exit 1 if --duration passes first)")
    .addOption(new Option("--poll-interval <duration>", "longest gap between a device's polls (gaps drawn from [interval/2, interval], as a real node)").argParser(durationIn(100, 3_600_000)).default(2000, "2s"))
    .option("--max-inflight <n>", "requests in flight at once across the fleet (bounds the connections)", intIn(1, 4096), 64)
    .addOption(new Option("--max-transport-errors <pct>", "share of requests that may get no answer or an off-contract one").argParser(parseRate).default(0.01, "1%"))
    .option("--node-prefix <prefix>", "node ids are <prefix>-NNNN (default sim-<random hex>)")
    .option("--allow-remote", "allow a --server that is not on this machine")
    .option("--json", "print the summary as one JSON document (per-release and per-phase counts, errors by code, request counts and p50/p99 latencies, faults)")
    .action(action(async (flags: FleetFlags) => {
      const server = flags.server ?? process.env.AUTONOMY_SERVER;
      if (server === undefined || server === "") throw new UsageError("no control plane given", "pass --server URL or set AUTONOMY_SERVER");
      const token = flags.token ?? process.env.AUTONOMY_TOKEN;
      if (token === undefined || token === "") throw new UsageError("no operator token given", "pass --token or set AUTONOMY_TOKEN (an owner token: it makes the enrollment tokens)");
      const seed = flags.seed ?? randomInt(0, 2 ** 32);
      process.stderr.write(`fleet seed: ${seed}\n`);
      const live = !flags.json && process.stderr.isTTY === true;
      const stop = new AbortController();
      const onSignal = (): void => stop.abort();
      process.once("SIGINT", onSignal);
      try {
        const summary = await runFleet({
          devices: flags.devices, server, token, channel: flags.channel, labels: parseLabels(flags.labels), faults: parseFaults(flags.faults), seed,
          trust: await trustFrom(flags), durationMs: flags.duration, untilConverged: flags.untilConverged === true, pollIntervalMs: flags.pollInterval,
          maxInflight: flags.maxInflight, maxTransportErrorRate: flags.maxTransportErrors, allowRemote: flags.allowRemote === true, signal: stop.signal,
          ...(flags.nodePrefix !== undefined ? { nodePrefix: flags.nodePrefix } : {}),
          ...(live ? { onProgress: (v) => void process.stderr.write(`\r\x1b[2K${progressLine(v.elapsedMs, v.devices, v.traffic).slice(0, (process.stderr.columns || 200) - 1)}`) } : {}),
        });
        if (live) process.stderr.write("\n");
        emit(summary, flags, renderFleet);
        return outcome(summary.exit_code === 0);
      } finally {
        process.removeListener("SIGINT", onSignal);
      }
    }));
}


