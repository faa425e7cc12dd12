/**
 * Slicing by action: one preparsed set per action named in a policy scope,
 * holding that action's policies plus the action-unconstrained ones, each
 * with the context paths its policies read.
 */
import * as cedar from "@cedar-policy/cedar-wasm/nodejs";
import { PolicyError, messageOf } from "../errors.js";
import type { CompiledPolicy } from "./compile.js";
import { collectNeeds, newNeed } from "./context-needs.js";
import type { Need } from "./context-needs.js";
import { acquireId, releaseId } from "./ids.js";

/** Beyond these, slicing costs more memory than it saves time: one unsliced set instead. */
const MAX_SLICES = 1024;
const MAX_SLICED_POLICY_COPIES = 20_000;

/** A slice of the policy set preparsed inside WASM. @internal */
export interface Slice {
  /** Preparsed-set id (undefined when the slice is empty: nothing to ask Cedar). */
  setId: string | undefined;
  /** The context paths its policies read. */
  needs: Need;
}

/** The slices of a policy set, and every preparsed-set id they hold (to release on dispose). @internal */
export interface Slices {
  byAction: ReadonlyMap<string, Slice>;
  /** For actions no policy names: the action-unconstrained policies (or every policy, when unsliced). */
  others: Slice;
  setIds: readonly string[];
}

/**
 * Preparses the slices of `policies` inside WASM. On failure every set made so
 * far is released before the `POLICY_COMPILE_FAILED` error is thrown.
 */
export function buildSlices(policies: readonly CompiledPolicy[]): Slices {
  const { any, specific } = groupByAction(policies);
  let copies = any.length;
  for (const list of specific.values()) copies += list.length + any.length;
  const sliced = specific.size <= MAX_SLICES && copies <= MAX_SLICED_POLICY_COPIES;

  const setIds: string[] = [];
  try {
    const byAction = new Map<string, Slice>();
    let others: Slice;
    if (sliced) {
      for (const [action, list] of specific) byAction.set(action, makeSlice(policies, [...any, ...list].sort((a, b) => a - b), setIds));
      others = makeSlice(policies, any, setIds);
    } else {
      others = makeSlice(policies, policies.map((_, i) => i), setIds);
    }
    return { byAction, others, setIds };
  } catch (e) {
    for (const id of setIds) releaseId(id);
    throw e instanceof PolicyError ? e : new PolicyError("POLICY_COMPILE_FAILED", `Cedar could not load the policy set: ${messageOf(e)}`, { cause: e });
  }
}

/** Policy indexes by the actions their scope names, and those of the action-unconstrained policies. */
function groupByAction(policies: readonly CompiledPolicy[]): { any: number[]; specific: Map<string, number[]> } {
  const any: number[] = [];
  const specific = new Map<string, number[]>();
  policies.forEach((p, i) => {
    const actions = scopeActions(p.json);
    if (actions === "any") any.push(i);
    else for (const a of new Set(actions)) specific.set(a, [...(specific.get(a) ?? []), i]);
  });
  return { any, specific };
}

/** Preparses the `members` of `policies` as one set (its id appended to `setIds`) and collects what they read. */
function makeSlice(policies: readonly CompiledPolicy[], members: number[], setIds: string[]): Slice {
  const needs = newNeed();
  for (const i of members) collectNeeds((policies[i] as CompiledPolicy).json.conditions, needs);
  if (members.length === 0) return { setId: undefined, needs };
  const staticPolicies: Record<string, string> = {};
  for (const i of members) staticPolicies[`p${i}`] = (policies[i] as CompiledPolicy).text;
  const setId = acquireId();
  setIds.push(setId);
  const r = cedar.preparsePolicySet(setId, { staticPolicies });
  if (r.type === "failure") throw new PolicyError("POLICY_COMPILE_FAILED", `Cedar refused the policy set: ${r.errors.map((e) => e.message).join("; ")}`);
  return { setId, needs };
}

/** The action ids a policy's scope can match, or "any" when unconstrained (or not understood). */
function scopeActions(p: cedar.PolicyJson): string[] | "any" {
  const a = p.action as { op: string; entity?: unknown; entities?: unknown };
  if (a.op === "All") return "any";
  const uids = a.op === "==" || a.op === "in" ? (Array.isArray(a.entities) ? a.entities : a.entity !== undefined ? [a.entity] : undefined) : undefined;
  if (uids === undefined) return "any";
  const ids: string[] = [];
  for (const raw of uids as unknown[]) {
    const uid = (raw && typeof raw === "object" && "__entity" in raw ? raw.__entity : raw) as { type?: unknown; id?: unknown } | null;
    if (!uid || typeof uid.type !== "string" || typeof uid.id !== "string") return "any";
    // Requests always carry Action::"tool:<name>" (entities are empty, so `in` is equality): other types never match.
    if (uid.type === "Action") ids.push(uid.id);
  }
  return ids;
}
