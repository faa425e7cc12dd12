import { randomBytes } from "node:crypto";
import { setMaxListeners } from "node:events";
import { CpClient } from "../cpapi/index.js";
import { redactUrl, seededRng } from "../lib/index.js";
import { sleep } from "../telemetry/index.js";
import { VirtualDevice } from "./device.js";
import type { Behaviour } from "./device.js";
import { FleetSimError } from "./errors.js";
import { assignFaults } from "./spec.js";
import type { FaultKind, FaultRates } from "./spec.js";
import { Traffic } from "./stats.js";
import type { FleetTrust } from "./verify.js";
import { checkServer } from "./server.js";
import { summarize } from "./summary.js";
import type { FleetSummary } from "./summary.js";

export interface FleetOptions {
  devices: number;
  server: string;
  /** Operator token with node:enroll (makes one single-use enrollment token per device). */
  token: string;
  channel: string;
  labels: Record<string, string>;
  faults: FaultRates;
  seed: number;
  trust: FleetTrust;
  /** Node ids are `<prefix>-<index>` (default `sim-<6 random hex>`: a second run does not collide). */
  nodePrefix?: string;
  /** Stop after this long (--duration), or, with untilConverged, at the latest after it. */
  durationMs: number;
  untilConverged: boolean;
  pollIntervalMs: number;
  heartbeatMs?: number;
  /** How often a device sends its queued events (default 5 s, or the poll interval when longer). */
  eventFlushMs?: number;
  maxInflight: number;
  /** Transport errors (no answer, off contract) above this share of requests fail the run. */
  maxTransportErrorRate: number;
  allowRemote: boolean;
  behaviour?: Partial<Behaviour>;
  /** Called about twice a second with the fleet (the CLI's live line). */
  onProgress?: (f: FleetView) => void;
  signal?: AbortSignal;
}

/** What the progress line shows. */
export interface FleetView {
  elapsedMs: number;
  devices: readonly VirtualDevice[];
  traffic: Traffic;
}

export const DEFAULT_BEHAVIOUR: Behaviour = { callsPerPoll: 4, denyRate: 0.05, misbehaveDenyRate: 0.5, toolErrorRate: 0.02 };

/**
 * Runs N virtual devices in this process against a control plane over HTTP
 * only (nothing but `server` is ever contacted; the client follows no
 * redirects). Enrollment tokens are made first (one per device, pinned to its
 * node id, with the labels), then every device enrolls and runs until the
 * duration ends or, with `untilConverged`, until every device has settled on
 * the latest release and sent all its events.
 */
export async function runFleet(o: FleetOptions): Promise<FleetSummary> {
  checkServer(o.server, o.allowRemote);
  checkTrust(o.trust);
  const started = performance.now();
  const traffic = new Traffic(o.maxInflight);
  const operator = new CpClient({ baseUrl: o.server, token: o.token });
  const prefix = o.nodePrefix ?? `sim-${randomBytes(3).toString("hex")}`;
  const faults = assignFaults(o.devices, o.faults, o.seed);
  const devices = faults.map((fault, i) => device(o, operator, traffic, prefix, i, fault));
  const tokens = await enrollmentTokens(operator, traffic, devices, o.labels, o.signal);
  await Promise.all(devices.map((d, i) => d.enroll(tokens[i] as string, o.labels)));

  const stop = new AbortController();
  setMaxListeners(devices.length + 16, stop.signal); // every sleeping device listens to it
  const outer = o.signal;
  const onAbort = (): void => stop.abort();
  outer?.addEventListener("abort", onAbort, { once: true });
  const runs = Promise.all(devices.map((d) => d.run(stop.signal, sleep)));
  let converged: boolean | null = o.untilConverged ? false : null;
  const timer = setInterval(() => o.onProgress?.({ elapsedMs: performance.now() - started, devices, traffic }), 500);
  try {
    const deadline = performance.now() + o.durationMs;
    while (!stop.signal.aborted && performance.now() < deadline) {
      await sleep(Math.min(250, Math.max(1, deadline - performance.now())), stop.signal);
      if (o.untilConverged && convergedOn(devices) !== null) {
        converged = true;
        break;
      }
    }
  } finally {
    stop.abort();
    clearInterval(timer);
    outer?.removeEventListener("abort", onAbort);
    await runs;
  }
  // What a device queued while the run was being stopped still goes out (ingest dedups).
  await Promise.all(devices.map((d) => d.flush()));
  o.onProgress?.({ elapsedMs: performance.now() - started, devices, traffic });
  const s = summarize({ devices, traffic, seed: o.seed, server: redactUrl(new URL(o.server)), channel: o.channel, prefix, elapsedMs: performance.now() - started, converged, latest: convergedOn(devices) ?? newestSeen(devices) });
  return verdict(s, o);
}

function device(o: FleetOptions, operator: CpClient, traffic: Traffic, prefix: string, i: number, fault: FaultKind | null): VirtualDevice {
  // Each device's own PRNG, from the seed and its index: its jitter and its tool calls replay.
  const random = seededRng((o.seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
  const walGeneration = Array.from({ length: 4 }, () => Math.floor(random() * 2 ** 32).toString(16).padStart(8, "0")).join("");
  return new VirtualDevice({
    nodeId: `${prefix}-${String(i).padStart(4, "0")}`, fault, channel: o.channel, pollIntervalMs: o.pollIntervalMs,
    heartbeatMs: o.heartbeatMs ?? o.pollIntervalMs, eventFlushMs: o.eventFlushMs ?? Math.max(5000, o.pollIntervalMs), trust: o.trust, behaviour: { ...DEFAULT_BEHAVIOUR, ...o.behaviour }, random, walGeneration,
  }, operator, traffic);
}

/** One single-use token per device, pinned to its id; made before any device starts (the operator token never reaches a device). */
async function enrollmentTokens(operator: CpClient, traffic: Traffic, devices: readonly VirtualDevice[], labels: Record<string, string>, signal?: AbortSignal): Promise<string[]> {
  const out: string[] = [];
  try {
    await Promise.all(devices.map(async (d, i) => {
      const r = await traffic.call("createEnrollmentToken", () => operator.createEnrollmentToken({ node_id: d.cfg.nodeId, labels, ttl_seconds: 3600 }, signal ? { signal } : {}));
      out[i] = r.token;
    }));
  } catch (e) {
    throw new FleetSimError("FLEET_SETUP_FAILED", `could not make the devices' enrollment tokens: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return out;
}

/** The newest release any device saw (highest sequence), when every device has settled on it; else null. */
export function convergedOn(devices: readonly VirtualDevice[]): string | null {
  const latest = newestSeen(devices);
  if (latest === null) return null;
  return devices.every((d) => d.settledOn(latest)) ? latest : null;
}

function newestSeen(devices: readonly VirtualDevice[]): string | null {
  let best: { id: string; seq: number } | null = null;
  for (const d of devices) {
    const r = d.latest;
    if (r !== null && (best === null || r.sequence > best.seq)) best = { id: r.release_id, seq: r.sequence };
  }
  return best?.id ?? null;
}

/** The same rule findStatements applies: a threshold from 1 to the number of distinct keys. */
function checkTrust(t: FleetTrust): void {
  const distinct = new Set(t.trusted.map((k) => k.keyId)).size;
  if (!Number.isSafeInteger(t.threshold) || t.threshold < 1 || t.threshold > distinct) {
    throw new FleetSimError("FLEET_SPEC_INVALID", `a threshold of ${t.threshold} with ${distinct} distinct trusted key(s) can never be met safely`);
  }
}

function verdict(s: FleetSummary, o: FleetOptions): FleetSummary {
  const rate = s.requests.total === 0 ? 0 : s.requests.transport_errors / s.requests.total;
  if (rate > o.maxTransportErrorRate) {
    return { ...s, exit_code: 1, failure: { code: "FLEET_TRANSPORT_ERRORS", message: `${s.requests.transport_errors} of ${s.requests.total} requests had a transport error (${(rate * 100).toFixed(2)} %, limit ${(o.maxTransportErrorRate * 100).toFixed(2)} %)` } };
  }
  if (s.internal_errors.count > 0) {
    return { ...s, exit_code: 1, failure: { code: "FLEET_DEVICE_ERRORS", message: `${s.internal_errors.count} device rounds failed unexpectedly (last: ${s.internal_errors.last ?? "?"})` } };
  }
  if (o.untilConverged && s.converged !== true) {
    return { ...s, exit_code: 1, failure: { code: "FLEET_NOT_CONVERGED", message: `the fleet did not settle on ${s.latest_release_id ?? "a release"} within ${Math.round(o.durationMs / 1000)} s` } };
  }
  return s;
}


