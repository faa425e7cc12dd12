import type { LoadedPolicy, PolicySlot } from "../policy/index.js";
import { openSlot } from "./bundle-store.js";
import type { LoadOptions } from "./policy-load.js";
import { readNodeState } from "./state.js";
import type { NodeState } from "./state.js";

export type LivePolicyEvent =
  | { type: "loaded"; slot: "current" | "lkg"; ref: string }
  | { type: "load_failed"; slot: "current" | "lkg"; digest: string; error: unknown }
  | { type: "none"; reason: string };

export interface LivePolicyOptions extends LoadOptions {
  /** How often the state file is re-read (ms). */
  pollMs?: number;
  onEvent?: (e: LivePolicyEvent) => void;
}

/**
 * The policy a running runtime enforces, kept in step with the node state:
 * a new `current` committed by `policy load` or `runtime activate` (another
 * process) is picked up within `pollMs` without a restart. A slot that fails
 * to verify or compile is never enforced: at start the runtime falls back to
 * LKG, later it keeps the verified policy it already has; with neither, there
 * is no policy and the interceptor denies everything.
 */
export class LivePolicy {
  readonly #stateRoot: string;
  readonly #opts: LivePolicyOptions;
  #loaded: LoadedPolicy | undefined;
  #generation = -1;
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;

  constructor(stateRoot: string, opts: LivePolicyOptions = {}) {
    this.#stateRoot = stateRoot;
    this.#opts = opts;
  }

  /** The PolicySource the interceptor asks on every call. */
  readonly current = (): LoadedPolicy | undefined => this.#loaded;

  async start(): Promise<void> {
    await this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.#opts.pollMs ?? 250);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#loaded?.engine.dispose();
    this.#loaded = undefined;
  }

  /** Re-reads the state; one refresh at a time. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #refresh(): Promise<void> {
    let state: NodeState;
    try {
      state = await readNodeState(this.#stateRoot);
    } catch (e) {
      this.#emit({ type: "load_failed", slot: "current", digest: "state.json", error: e });
      return;
    }
    if (state.generation === this.#generation) return;
    this.#generation = state.generation;
    if (state.current?.digest !== undefined && state.current.digest === this.#loaded?.bundle.digest) return;
    if (state.current && (await this.#trySlot(state.current, "current"))) return;
    if (this.#loaded) return; // keep the verified policy already enforced
    if (state.lkg && (await this.#trySlot(state.lkg, "lkg"))) return;
    this.#emit({ type: "none", reason: state.current ? "no slot verified and compiled" : "no policy loaded" });
  }

  async #trySlot(slot: PolicySlot, which: "current" | "lkg"): Promise<boolean> {
    try {
      const next = await openSlot(this.#stateRoot, slot, this.#opts);
      const prev = this.#loaded;
      this.#loaded = next;
      // In-flight evaluations finish on the old engine; free it once they can no longer hold it.
      if (prev) setTimeout(() => prev.engine.dispose(), 1000).unref();
      this.#emit({ type: "loaded", slot: which, ref: next.ref });
      return true;
    } catch (e) {
      this.#emit({ type: "load_failed", slot: which, digest: slot.digest, error: e });
      return false;
    }
  }

  #emit(e: LivePolicyEvent): void {
    try {
      this.#opts.onEvent?.(e);
    } catch {
      // An observer must never change what is enforced.
    }
  }
}
