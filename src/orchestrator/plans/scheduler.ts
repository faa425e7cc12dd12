import type { Clock } from "../../lib/index.js";
import { messageOf } from "../../lib/index.js";
import type { Logger } from "../../observability/index.js";
import type { Store } from "../db/connect.js";
import { tick } from "../rollouts/index.js";
import { observe } from "./observe.js";
import type { PlanStateCache } from "./state-cache.js";
import { livePlanIds, stepPlan } from "./store.js";

/** Default interval between two scheduler passes (ms). */
export const SCHEDULER_INTERVAL_MS = 1000;

/**
 * The rollout scheduler inside `autonomy serve`: every `intervalMs` it ticks
 * every plan not in a terminal phase (the engine's `tick`: stuck detection by
 * timeouts, the failure budget, rollback confirmations from heartbeats, which
 * nodes to start, the stage gates with behaviour metrics from the events
 * table). It keeps no state of its own: each tick reads the plan from the
 * store and writes the next state with its effects in one transaction, so a
 * restarted (or SIGKILLed) server resumes exactly where the store says.
 *
 * Several servers on one PostgreSQL: a tick reads the plan row FOR UPDATE
 * SKIP LOCKED, so a plan another server is ticking (or a command is changing)
 * is skipped this pass, never stepped twice; the version check
 * (`WHERE version = v`) is the second guard.
 */
export class RolloutScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly onAssignments: () => void,
    private readonly intervalMs = SCHEDULER_INTERVAL_MS,
    /** The area's plan cache (shared with the ack hook and the commands): a tick of an unchanged plan parses nothing. */
    private readonly cache?: PlanStateCache,
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tickAll()
        .then(() => undefined)
        .catch((e: unknown) => this.log.error({ err: messageOf(e) }, "rollout scheduler pass failed; the next pass retries"))
        .finally(() => {
          this.running = undefined;
          this.schedule();
        });
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Stops the loop and waits for a pass in flight (so the store can close after). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** One pass over every live plan; returns how many plans moved. A failing plan is logged and the others still tick. */
  async tickAll(): Promise<number> {
    let moved = 0;
    for (const id of await livePlanIds(this.store.db)) {
      try {
        if (await this.tickOne(id)) moved++;
      } catch (e) {
        this.log.error({ plan_id: id, err: messageOf(e) }, "rollout tick failed; the plan is left as stored");
      }
    }
    return moved;
  }

  /** Ticks one plan; true when its state changed. */
  async tickOne(planId: string): Promise<boolean> {
    const now = (): number => this.clock.now();
    const out = await stepPlan(
      this.store,
      planId,
      now,
      async (state, tx) => {
        const at = now();
        const t = tick(state, at, await observe(tx, this.store.dialect, state, at));
        return { ...t, result: t.effects.length > 0 };
      },
      { lock: "skip", onAssignments: this.onAssignments, ...(this.cache ? { cache: this.cache } : {}) },
    );
    for (const e of out?.effects ?? []) if (e.kind === "phase_changed") this.log.info({ plan_id: planId, from: e.from, to: e.to, reason: e.reason }, "rollout phase changed");
    return out?.result === true;
  }
}
