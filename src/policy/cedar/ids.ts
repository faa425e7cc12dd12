/**
 * Preparsed-set ids.
 *
 * cedar-wasm keeps preparsed policy sets in a thread-local map inside WASM and
 * offers no call to remove one. Preparsing again under the same id replaces
 * (and frees) the previous set, so dispose() overwrites its ids with the empty
 * set and returns them to this free list; the next engine reuses them. The map
 * therefore holds at most as many entries as were ever alive at once, each
 * disposed one holding only an empty set.
 */
import * as cedar from "@cedar-policy/cedar-wasm/nodejs";

const freeIds: string[] = [];
let nextId = 0;

/** An id to preparse a policy set under: a released one if any, else a new one. */
export function acquireId(): string {
  return freeIds.pop() ?? `autonomyops-cedar-${nextId++}`;
}

/** Empties the set under `id` inside WASM and returns the id to the pool. */
export function releaseId(id: string): void {
  try {
    cedar.preparsePolicySet(id, { staticPolicies: {} });
    freeIds.push(id);
  } catch {
    // Leave the id out of the pool: never hand out an id whose content is unknown.
  }
}
