import { LayoutRepository } from "../oci/index.js";
import { AutonomyError, dateOf, sha256Digest, systemClock } from "../lib/index.js";
import { PolicyError } from "../policy/index.js";
import type { ReleaseStatement } from "../supplychain/index.js";
import { initStateRoot } from "./init.js";
import { releaseStorePath } from "./layout.js";
import { commitPolicy } from "./policy-load.js";
import type { LoadOptions } from "./policy-load.js";
import { activationRecordOf, judgeRelease, withActivation, withEquivocation } from "./release-rules.js";
import type { Verdict } from "./release-rules.js";
import { readNodeState, commitNodeState } from "./state.js";
import type { ActivationRecord, EquivocationRecord, NodeState } from "./state.js";
import { requireTrustRoot } from "./trust.js";

export interface ActivationCommit {
  /** The record now in force: the new one, or the one already recorded when this statement was active. */
  activation: ActivationRecord;
  state: NodeState;
  policyRef: string;
  /** False when this exact statement was already active (re-activation is a no-op). */
  changed: boolean;
}

/** What the runtime offers the node: a statement verified against the node's trust root, and where it came from. */
export interface ActivationOffer {
  ref: string;
  statement: ReleaseStatement;
}

/**
 * The node's store of verified releases (an OCI image layout). The state root
 * is initialised first: `activation/` is steady-state evidence, so the WAL and
 * its safe point must exist before it does (seed 001 §3.4).
 */
export async function openReleaseStore(stateRoot: string): Promise<LayoutRepository> {
  await initStateRoot(stateRoot);
  return new LayoutRepository(releaseStorePath(stateRoot));
}

export interface ActivationCommitOptions extends LoadOptions {
  /** The activation's fixed start time (TUF): expiry is judged at it. Default: the clock, now. */
  startedAt?: Date;
}

/**
 * Loads the bundle the statement names and records the activation in ONE
 * atomic commit of the node state, after the node's rules (release-rules.ts)
 * accepted the statement against what is durably recorded and the trust root
 * as it is now (both read inside the state lock). The rules are also checked
 * before the bundle is compiled, so a refused statement is refused for what it
 * is. An equivocation is recorded durably before it is reported. Killed at any
 * instant, the node is on the old activation or the new one, never in between.
 */
export async function commitActivation(stateRoot: string, bundleBytes: Uint8Array, offer: ActivationOffer, opts: ActivationCommitOptions = {}): Promise<ActivationCommit> {
  // TUF's fixed update start time: every check of this activation uses the same instant.
  const now = opts.startedAt ?? dateOf(opts.clock ?? systemClock);
  const { statement } = offer;
  const named = statement.predicate.policy_bundle.digest;
  const actual = sha256Digest(bundleBytes);
  if (actual !== named) {
    throw new PolicyError("BUNDLE_DIGEST_MISMATCH", `the policy bundle offered for activation is ${actual}, not ${named}, the one the statement names`, { details: { expected: named, actual } });
  }
  await checkRelease(stateRoot, statement, now);
  const record = activationRecordOf(offer.ref, statement, now);
  let same = false;
  let changed = true;
  const { startedAt: _started, ...load } = opts;
  const result = await recordingEquivocation(stateRoot, now, () => commitPolicy(stateRoot, bundleBytes, { ...load, clock: opts.clock ?? systemClock }, async (next, prev) => {
    if (judgeRelease(prev, statement, await requireTrustRoot(stateRoot), now) === "same") {
      // The same statement again: only the policy slot may need restoring (after a manual `policy load`).
      same = true;
      changed = next !== prev;
      return next;
    }
    return withActivation(next, record);
  }));
  result.loaded.engine.dispose();
  return { activation: same ? (result.state.activation ?? record) : record, state: result.state, policyRef: result.loaded.ref, changed };
}

/**
 * The node's rules applied to the state as it is now, outside the lock: lets
 * the caller refuse a statement before fetching, storing or compiling anything
 * for it (the commit checks again inside the lock). An equivocation is
 * recorded before it is reported. Returns "same" when it is already active.
 */
export function checkRelease(stateRoot: string, statement: ReleaseStatement, now: Date): Promise<Verdict> {
  return recordingEquivocation(stateRoot, now, async () => judgeRelease(await readNodeState(stateRoot), statement, await requireTrustRoot(stateRoot), now));
}

/** Runs `work`; an equivocation it reports is first recorded in the node state (its own small commit), then rethrown. */
async function recordingEquivocation<T>(stateRoot: string, now: Date, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    if (e instanceof AutonomyError && e.code === "ACTIVATION_EQUIVOCATION") {
      const d = e.details as { sequence: number; recorded: string; offered: string };
      await recordEquivocation(stateRoot, { sequence: d.sequence, recorded: d.recorded, offered: d.offered, at: now.toISOString() });
    }
    throw e;
  }
}

/**
 * Records an equivocation in the node state for the operator (its own small
 * commit; the list is bounded). Also used by the runtime when the registry
 * itself carries two valid statements under one sequence.
 */
export async function recordEquivocation(stateRoot: string, e: EquivocationRecord): Promise<void> {
  await commitNodeState(stateRoot, (prev) => withEquivocation(prev, e));
}
