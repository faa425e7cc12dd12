/**
 * "Relay the node's activated release to every peer when it changes"
 * (`[relay] relay_activated_release`): edged's side of seed once, update
 * everywhere. The node state is the one source of truth for what is active
 * (any process may activate: `runtime activate`, the release poller, a relayed
 * segment), so the watcher reads it rather than being told.
 */
import { readNodeState } from "../node/index.js";
import { messageOf } from "../lib/index.js";
import { packActiveRelease } from "./release-relay-pack.js";
import type { PackedRelease } from "./release-relay-pack.js";

export interface ActiveReleaseWatchOptions {
  stateRoot: string;
  /** Hands the packed release to the relay (edged: enqueue it as a `release` segment for every peer). */
  onRelease: (packed: PackedRelease) => Promise<void>;
  /** The relay's max_segment_bytes (see packActiveRelease). */
  maxBytes?: number;
  /** How often the node state is read. Default 1 s. */
  intervalMs?: number;
  /** A failed pack or hand-over (retried on the next tick). */
  onError?: (e: unknown, message: string) => void;
}

export interface ActiveReleaseWatch {
  /** Reads the node state now and relays the active release if it is not the one last handed over; the statement digest handed over, if any. */
  check(): Promise<string | undefined>;
  /** Stops the timer; a check in progress finishes. */
  stop(): Promise<void>;
}

/**
 * Watches the node's activation and hands each newly active release to
 * `onRelease` once (the first check hands over the release active at start:
 * segments are content-addressed, so one a peer already has is deduplicated
 * and re-activating it there is a no-op). A failure is reported and retried on
 * the next tick; checks never overlap.
 */
export function watchActiveRelease(opts: ActiveReleaseWatchOptions): ActiveReleaseWatch {
  let handed: string | undefined;
  let inFlight: Promise<string | undefined> | undefined;
  const once = async (): Promise<string | undefined> => {
    const active = (await readNodeState(opts.stateRoot)).activation;
    if (active === undefined || active.statement_digest === handed) return handed;
    const packed = await packActiveRelease(opts.stateRoot, opts.maxBytes !== undefined ? { maxBytes: opts.maxBytes } : {});
    // Activated again between the two reads: hand over what was packed, the next tick sees the rest.
    if (packed === undefined) return handed;
    await opts.onRelease(packed);
    handed = packed.statementDigest;
    return handed;
  };
  const check = (): Promise<string | undefined> => {
    inFlight ??= once().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };
  const timer = setInterval(() => {
    check().catch((e: unknown) => opts.onError?.(e, `relaying the active release failed (retried): ${messageOf(e)}`));
  }, opts.intervalMs ?? 1_000);
  timer.unref();
  return {
    check,
    stop: async () => {
      clearInterval(timer);
      await inFlight?.catch(() => undefined);
    },
  };
}
