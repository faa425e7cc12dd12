import { seededRng } from "../lib/index.js";
import { FleetSimError } from "./errors.js";

/**
 * What a virtual device can be told to do wrong. Each device gets at most one,
 * chosen from the seed: exactly round(N × rate) devices per fault.
 * - fail: every activation of a new release fails (`activate_failed`)
 * - hang: stops acking after `activation_started` (stuck), keeps heartbeating the old release
 * - corrupt: sees corrupt statement bytes, so its own verification refuses them (`verify_failed`)
 * - misbehave: after an update (an activation while another release ran), its deny rate jumps
 * - offline: goes silent after its first heartbeat (no heartbeats, no polls)
 */
export const FAULT_KINDS = ["fail", "hang", "corrupt", "misbehave", "offline"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
export type FaultRates = Partial<Record<FaultKind, number>>;

/** `fail=5%,hang=2%,corrupt=1%` (a percentage or a fraction 0–1); the rates may add up to at most 100 %. */
export function parseFaults(spec: string): FaultRates {
  const out: FaultRates = {};
  if (spec.trim() === "") return out;
  for (const part of spec.split(",")) {
    const m = /^\s*([a-z]+)\s*=\s*([0-9]+(?:\.[0-9]+)?)(%?)\s*$/.exec(part);
    if (!m) throw new FleetSimError("FLEET_SPEC_INVALID", `--faults: ${JSON.stringify(part)} is not kind=rate (e.g. fail=5%)`);
    const [, kind = "", num = "", pct] = m;
    if (!(FAULT_KINDS as readonly string[]).includes(kind)) throw new FleetSimError("FLEET_SPEC_INVALID", `--faults: unknown fault ${JSON.stringify(kind)} (one of ${FAULT_KINDS.join(", ")})`);
    if ((out as Record<string, number>)[kind] !== undefined) throw new FleetSimError("FLEET_SPEC_INVALID", `--faults: ${kind} given twice`);
    const rate = pct === "%" ? Number(num) / 100 : Number(num);
    if (!(rate >= 0 && rate <= 1)) throw new FleetSimError("FLEET_SPEC_INVALID", `--faults: ${kind}=${num}${pct ?? ""} is not between 0 and 100 %`);
    out[kind as FaultKind] = rate;
  }
  const total = Object.values(out).reduce((a, b) => a + b, 0);
  if (total > 1 + 1e-9) throw new FleetSimError("FLEET_SPEC_INVALID", `--faults add up to ${(total * 100).toFixed(1)} %: a device has at most one fault`);
  return out;
}

/**
 * The fault of each device index, from the seed alone: the indices are
 * shuffled (Fisher–Yates with the seeded PRNG) and the first round(N × fail)
 * get `fail`, the next `hang`, … in {@link FAULT_KINDS} order. Same seed, N
 * and rates → the same assignment.
 */
export function assignFaults(devices: number, rates: FaultRates, seed: number): (FaultKind | null)[] {
  const random = seededRng(seed);
  const order = Array.from({ length: devices }, (_, i) => i);
  for (let i = devices - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  const out: (FaultKind | null)[] = new Array<FaultKind | null>(devices).fill(null);
  let next = 0;
  for (const kind of FAULT_KINDS) {
    const n = Math.min(devices - next, Math.round(devices * (rates[kind] ?? 0)));
    for (let k = 0; k < n; k++) out[order[next++] as number] = kind;
  }
  return out;
}

/** `k=v` labels; keys and values as the control plane's Labels schema takes them. */
export function parseLabels(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf("=");
    if (eq <= 0) throw new FleetSimError("FLEET_SPEC_INVALID", `--labels: ${JSON.stringify(p)} is not key=value`);
    out[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return out;
}
