import { LayoutRepository } from "../oci/index.js";
import { NodeError } from "./errors.js";
import { initStateRoot } from "./init.js";
import { releaseStorePath } from "./layout.js";
import { commitPolicy } from "./policy-load.js";
import type { LoadOptions } from "./policy-load.js";
import type { ActivationRecord, NodeState } from "./state.js";

export interface ActivationCommit {
  /** The record now in force: the new one, or the one already recorded when this release was active. */
  activation: ActivationRecord;
  state: NodeState;
  policyRef: string;
  /** False when this exact release was already active (re-activation is a no-op). */
  changed: boolean;
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

/**
 * Loads the release's policy and records the activation in ONE atomic commit
 * of the node state, after the rollback protection has accepted it against
 * what is durably recorded (checked inside the state lock). Killed at any
 * instant, the node is on the old activation or the new one, never in between.
 */
export async function commitActivation(stateRoot: string, bundleBytes: Uint8Array, record: ActivationRecord, opts: LoadOptions = {}): Promise<ActivationCommit> {
  let changed = true;
  const result = await commitPolicy(stateRoot, bundleBytes, opts, (next, prev) => {
    if (!checkSequence(prev, record)) {
      // Same release again: only the policy slot may need restoring (after a manual `policy load`).
      changed = next !== prev;
      return next;
    }
    const higher = record.sequence > prev.highest_sequence;
    return {
      ...next, activation: record,
      highest_sequence: higher ? record.sequence : prev.highest_sequence,
      ...(higher ? { highest_artifact_digest: record.artifact_digest } : {}),
    };
  });
  result.loaded.engine.dispose();
  return { activation: changed ? record : (result.state.activation ?? record), state: result.state, policyRef: result.loaded.ref, changed };
}

/**
 * Rollback protection (TUF / Uptane client rules):
 *   - the release already active → nothing to change (returns false);
 *   - another release under the active or the highest sequence → equivocation, refused;
 *   - a lower sequence than the highest ever activated → refused unless signed as a rollback;
 *   - the highest release itself (after a rollback) or a higher one → accepted.
 */
function checkSequence(prev: NodeState, rec: ActivationRecord): boolean {
  const active = prev.activation;
  if (active && active.sequence === rec.sequence && active.artifact_digest === rec.artifact_digest && active.policy_digest === rec.policy_digest) return false;
  const holder = active && active.sequence === rec.sequence ? active.artifact_digest : rec.sequence === prev.highest_sequence ? prev.highest_artifact_digest : undefined;
  if (holder !== undefined && holder !== rec.artifact_digest) {
    throw new NodeError("ACTIVATION_EQUIVOCATION", `sequence ${rec.sequence} belongs to ${holder}; refusing ${rec.artifact_digest} under the same sequence`, {
      details: { sequence: rec.sequence, recorded: holder, offered: rec.artifact_digest },
    });
  }
  if (rec.sequence < prev.highest_sequence && !rec.rollback) {
    throw new NodeError("ACTIVATION_ROLLBACK_REFUSED", `release sequence ${rec.sequence} is older than ${prev.highest_sequence}, the highest this node has activated`, {
      details: { offered: rec.sequence, highest: prev.highest_sequence },
    });
  }
  return true;
}
