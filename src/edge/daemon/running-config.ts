import type { Clock } from "../../lib/index.js";
import { isoTime, messageOf } from "../../lib/index.js";
import type { Logger } from "../../observability/index.js";
import type { EdgeConfig } from "../config/schema.js";
import type { BandwidthConfig, BandwidthLimiter } from "../types.js";
import { restartRequired, sameBandwidth } from "./config-diff.js";
import type { BandwidthApplied, BandwidthChange, ConfigState } from "./control-types.js";
import type { EdgeConfigLoader } from "./ports.js";

/** What a reload did. */
export type ReloadOutcome =
  | { ok: true; bandwidth_applied: boolean; restart_required: string[] }
  | { ok: false; error: string };

/**
 * The configuration edged runs with, and the one place it changes: a reload
 * of edge.toml (SIGHUP, file watch) or `edgectl relay config set-bandwidth`.
 * Bandwidth applies at once; any other changed key is kept at its running
 * value and listed as needing a restart; a file that no longer loads keeps the
 * running configuration and shows its error (`config_reload_error`).
 *
 * A bandwidth set through the control socket holds until the file's own
 * [bandwidth] changes (or edged restarts): reloading an unchanged file does
 * not undo an operator's live change.
 */
export class RunningConfig {
  #config: EdgeConfig;
  /** The [bandwidth] the file had at the last successful load. */
  #fileBandwidth: BandwidthConfig;
  #loadedAt: string;
  #reloadError: string | null = null;
  #restartRequired: string[] = [];
  readonly #bandwidth: BandwidthLimiter;
  readonly #load: EdgeConfigLoader;
  readonly #clock: Clock;
  readonly #log: Logger;

  readonly #changed: () => Promise<void>;

  /** `changed` runs after every applied bandwidth change (the relay re-checks deliveries the quota held). */
  constructor(config: EdgeConfig, deps: { bandwidth: BandwidthLimiter; load: EdgeConfigLoader; clock: Clock; log: Logger; changed?: () => Promise<void> }) {
    this.#changed = deps.changed ?? (() => Promise.resolve());
    this.#config = config;
    this.#fileBandwidth = { ...config.bandwidth };
    this.#bandwidth = deps.bandwidth;
    this.#load = deps.load;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#loadedAt = isoTime(deps.clock);
  }

  get current(): EdgeConfig {
    return this.#config;
  }

  state(): ConfigState {
    return { source: this.#config.source, loaded_at: this.#loadedAt, config_reload_error: this.#reloadError, restart_required: [...this.#restartRequired] };
  }

  /** Re-reads the file; never throws (a failure is recorded and logged, the running config stays). */
  async reload(reason: "sighup" | "file_watch"): Promise<ReloadOutcome> {
    let next: EdgeConfig;
    try {
      next = await this.#load(this.#config.source);
    } catch (e) {
      this.#reloadError = messageOf(e);
      this.#log.warn({ event: "config_reload_failed", reason, source: this.#config.source, error: this.#reloadError }, "edge.toml reload failed; the running configuration is kept");
      return { ok: false, error: this.#reloadError };
    }
    this.#reloadError = null;
    this.#loadedAt = isoTime(this.#clock);
    this.#restartRequired = restartRequired(this.#config, next);
    let applied = false;
    if (!sameBandwidth(this.#fileBandwidth, next.bandwidth)) {
      this.#fileBandwidth = { ...next.bandwidth };
      this.#applyBandwidth(next.bandwidth);
      applied = true;
    }
    this.#log.info({ event: "config_reloaded", reason, bandwidth_applied: applied, restart_required: this.#restartRequired, bandwidth: this.#config.bandwidth }, "edge.toml reloaded");
    return { ok: true, bandwidth_applied: applied, restart_required: [...this.#restartRequired] };
  }

  /** `edgectl relay config set-bandwidth`: merged over the running values, applied at once. */
  setBandwidth(change: BandwidthChange): BandwidthApplied {
    const next = { ...this.#config.bandwidth, ...change };
    this.#applyBandwidth(next);
    this.#log.info({ event: "relay.bandwidth.configured", bandwidth: next, source: "control_socket" }, "bandwidth changed through the control socket");
    return { applied: true, bandwidth: { ...next }, persisted: false };
  }

  #applyBandwidth(b: BandwidthConfig): void {
    this.#bandwidth.update({ ...b });
    this.#config = { ...this.#config, bandwidth: { ...b } };
    void this.#changed().catch((e: unknown) => this.#log.error({ err: e, event: "quota_resume_failed" }, "releasing deliveries held for the quota failed; they go at the next reset"));
  }
}
