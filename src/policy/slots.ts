import { z } from "zod";
import type { PolicyBundle } from "./types.js";

/**
 * Slot rotation, as pure functions over values: the node domain (src/node)
 * reads and commits the slots; this module only decides what they become.
 */
export const policySlotSchema = z.strictObject({
  digest: z.string().regex(/^sha256:[a-f0-9]{64}$/),
  name: z.string().min(1),
  version: z.string().min(1),
  loaded_at: z.string().min(1),
});

export type PolicySlot = z.infer<typeof policySlotSchema>;

/** The two slots: what is enforced (`current`) and the last known good before it (`lkg`). */
export interface PolicySlots {
  current?: PolicySlot;
  lkg?: PolicySlot;
}

/** The slot a verified bundle occupies once loaded at `loadedAt`. */
export function slotOf(bundle: PolicyBundle, loadedAt: Date): PolicySlot {
  return { digest: bundle.digest, name: bundle.manifest.name, version: bundle.manifest.policy_bundle_version, loaded_at: loadedAt.toISOString() };
}

/**
 * Loads `slot` into `current`: the old current becomes LKG. Loading the bundle
 * that already is current rotates nothing (returns the same object), so a
 * re-load can never push the real LKG out.
 */
export function rotateSlots<S extends PolicySlots>(state: S, slot: PolicySlot): { next: S; rotated: boolean } {
  if (state.current?.digest === slot.digest) return { next: state, rotated: false };
  return { next: { ...state, current: slot, ...(state.current ? { lkg: state.current } : {}) }, rotated: true };
}

/** The bundle digests the slots still name: everything else in a bundle store is garbage. */
export function slotDigests(state: PolicySlots): string[] {
  return [state.current?.digest, state.lkg?.digest].filter((d): d is string => d !== undefined);
}
