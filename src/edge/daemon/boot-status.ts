import { Gauge } from "prom-client";
import type { Registry } from "prom-client";
import { messageOf } from "../../lib/index.js";
import { readBootState, readEvidence } from "../bootstrap/boot-state.js";
import type { EpochEvidence } from "../bootstrap/boot-state.js";

/**
 * The last reconstruction `edged precheck` recorded in the state root:
 * `completed` (its evidence is `epoch/current`, the fingerprint file committed
 * it) or `abandoned` (killed before its commit point, then the node came back
 * on its old OS: `epoch/abandoned`), or `uncommitted` (its evidence is in
 * `epoch/current` but the fingerprint file was never advanced: killed before
 * the commit point, and no precheck ran since). A reconstruction that failed outright
 * leaves no record here: precheck exits 5 and edged does not start.
 */
export interface ReconstructionView {
  outcome: "completed" | "abandoned" | "uncommitted";
  /** The boot epoch it advanced (or would have advanced) to. */
  epoch: number;
  /** RFC 3339 UTC, by the node's clock at the time. */
  at: string;
  previous_fingerprint: string;
  new_fingerprint: string;
  /** The signed runtime manifest it installed from; null when no install directory is configured. */
  runtime_manifest_digest: string | null;
}

/** The node's boot epoch as `edgectl relay status` shows it (issue 11: what an operator checks after an OS replacement). */
export interface BootStatusView {
  /** 0 on the first boot, +1 per reconstruction; null before the first `edged precheck`. */
  boot_epoch: number | null;
  /** The OS fingerprint recorded at that epoch (blake3:…). */
  os_fingerprint: string | null;
  captured_at: string | null;
  last_reconstruction: ReconstructionView | null;
  /** The boot files could not be read (the rest is then null); status still answers. */
  error: string | null;
}

function view(ev: EpochEvidence, outcome: ReconstructionView["outcome"]): ReconstructionView {
  return {
    outcome, epoch: ev.epoch, at: ev.reconstructed_at, previous_fingerprint: ev.previous_fingerprint, new_fingerprint: ev.new_fingerprint,
    runtime_manifest_digest: ev.installed?.manifest_digest ?? null,
  };
}

/**
 * Reads the boot epoch and the last reconstruction from the state root
 * (src/edge/bootstrap: `bootstrap/os_fingerprint.json`, `epoch/current`,
 * `epoch/abandoned`) at each call: precheck may run while edged does. An
 * abandoned attempt is the last one only when its epoch is above the
 * committed evidence's (a later successful reconstruction reaches the same
 * epoch and wins; the clock is not compared, it may have been reset with the OS).
 * Never throws: a malformed file becomes `error`.
 */
export async function readBootStatus(stateRoot: string): Promise<BootStatusView> {
  try {
    const [state, current, abandoned] = await Promise.all([readBootState(stateRoot), readEvidence(stateRoot, "current"), readEvidence(stateRoot, "abandoned")]);
    const committed = (ev: EpochEvidence): boolean => state === undefined || ev.epoch <= state.boot_epoch;
    const last = abandoned !== undefined && abandoned.epoch > (current?.epoch ?? 0) ? view(abandoned, "abandoned") : current && view(current, committed(current) ? "completed" : "uncommitted");
    return { boot_epoch: state?.boot_epoch ?? null, os_fingerprint: state?.composite_hash ?? null, captured_at: state?.captured_at ?? null, last_reconstruction: last ?? null, error: null };
  } catch (e) {
    return { boot_epoch: null, os_fingerprint: null, captured_at: null, last_reconstruction: null, error: messageOf(e) };
  }
}

/**
 * The boot gauges, read at scrape time: `edged_boot_epoch{os_fingerprint}`
 * (no sample before the first precheck), `edged_boot_last_reconstruction_timestamp_seconds{outcome}`
 * and `edged_boot_state_unreadable` (1 when the boot files cannot be read).
 */
export function registerBootMetrics(registry: Registry, stateRoot: () => string): void {
  const r = [registry];
  // Each gauge reads the few small boot files itself (scrapes are seconds apart; no shared cache to get stale).
  const read = (): Promise<BootStatusView> => readBootStatus(stateRoot());
  new Gauge({
    name: "edged_boot_epoch", help: "The node's boot epoch (0 on the first boot, +1 per OS reconstruction), labelled with the OS fingerprint recorded at it", labelNames: ["os_fingerprint"], registers: r,
    async collect() {
      const b = await read();
      // Labelled so that "unknown" (before the first precheck, or unreadable) is no sample at all, not a 0.
      this.reset();
      if (b.boot_epoch !== null) this.set({ os_fingerprint: b.os_fingerprint ?? "" }, b.boot_epoch);
    },
  });
  new Gauge({
    name: "edged_boot_last_reconstruction_timestamp_seconds", help: "When the last OS reconstruction ran (its evidence's time, Unix seconds), by outcome: completed, uncommitted, abandoned", labelNames: ["outcome"], registers: r,
    async collect() {
      const b = await read();
      this.reset();
      const x = b.last_reconstruction;
      const t = x === null ? NaN : Date.parse(x.at) / 1000;
      if (x !== null && Number.isFinite(t)) this.set({ outcome: x.outcome }, t);
    },
  });
  new Gauge({
    name: "edged_boot_state_unreadable", help: "1 when the boot epoch files in the state root cannot be read", registers: r,
    async collect() {
      const b = await read();
      this.set(b.error === null ? 0 : 1);
    },
  });
}
