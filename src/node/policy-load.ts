import { crashPoint, dateOf, systemClock } from "../lib/index.js";
import type { Clock } from "../lib/index.js";
import { compileBundle, rotateSlots, slotOf } from "../policy/index.js";
import type { CompileOptions, LoadedPolicy } from "../policy/index.js";
import { collectBundles, storeBundle } from "./bundle-store.js";
import { commitNodeState } from "./state.js";
import type { NodeState } from "./state.js";

export interface LoadOptions extends CompileOptions {
  /** Clock for the slot's `loaded_at`. Default {@link systemClock}. */
  clock?: Clock;
}

export interface LoadResult {
  loaded: LoadedPolicy;
  state: NodeState;
  /** False when the bundle already was current (nothing rotated). */
  rotated: boolean;
}

/**
 * Loads a bundle into the `current` slot: verify → compile → store the bytes
 * (content-addressed, durable) → one atomic commit of the node state in which
 * the old current becomes LKG. Any failure before the commit changes nothing.
 */
export function loadPolicy(stateRoot: string, bytes: Uint8Array, opts: LoadOptions = {}): Promise<LoadResult> {
  return commitPolicy(stateRoot, bytes, opts, (next) => next);
}

/**
 * The one commit path of a policy (node-internal): `also` is applied to the
 * rotated state inside the state lock (it may read, not write) and may throw
 * to refuse the whole commit; the activation commit records its release through it.
 */
export async function commitPolicy(stateRoot: string, bytes: Uint8Array, opts: LoadOptions, also: (next: NodeState, previous: NodeState) => NodeState | Promise<NodeState>): Promise<LoadResult> {
  const loaded = await compileBundle(bytes, opts);
  try {
    const slot = slotOf(loaded.bundle, dateOf(opts.clock ?? systemClock));
    let rotated = false;
    const state = await commitNodeState(stateRoot, async (prev) => {
      const r = rotateSlots(prev, slot);
      rotated = r.rotated;
      const final = await also(r.next, prev);
      // Stored before the commit that names it: state.json never points at a missing bundle.
      await storeBundle(stateRoot, slot.digest, bytes);
      crashPoint("policy-after-store");
      return final;
    }, (committed) => collectBundles(stateRoot, committed));
    return { loaded, state, rotated };
  } catch (e) {
    loaded.engine.dispose();
    throw e;
  }
}
