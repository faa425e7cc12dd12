import type { KeyObject } from "node:crypto";
import { join } from "node:path";
import { LayoutRepository, copyArtifact, formatReference, openRepository, referenceTarget } from "../oci/index.js";
import type { Reference, RepositoryOptions } from "../oci/index.js";
import { loadPolicy } from "../policy/index.js";
import type { ActivationRecord, EngineCompiler, NodeState } from "../policy/index.js";
import { RELEASE_SEQUENCE_KEY, ROLLBACK_KEY, verifyRelease } from "../supplychain/index.js";
import type { VerifyReleaseReport } from "../supplychain/index.js";
import { crashPoint } from "../lib/index.js";
import { initStateRoot, stateRootPaths } from "../edge/index.js";
import { RuntimeError } from "./errors.js";

export interface ActivateOptions {
  ref: Reference;
  key: KeyObject;
  stateRoot: string;
  maxAgeMs: number;
  now?: () => Date;
  repositoryOptions?: RepositoryOptions;
  compile?: EngineCompiler;
  runtimeVersion?: string;
}

export interface ActivationResult {
  activation: ActivationRecord;
  state: NodeState;
  policyRef: string;
  /** False when this exact release was already active (re-activation is a no-op). */
  changed: boolean;
  verification: VerifyReleaseReport;
}

/** Where verified releases are kept on the node (an OCI layout), so it can re-activate offline. */
export function releaseStorePath(stateRoot: string): string {
  return join(stateRootPaths(stateRoot).activation, "store");
}

/**
 * Activates a signed release on this node:
 *   1. verify it fail-closed (signatures, digests, lock pins this image, bundle is the one the lock names);
 *   2. read the signed release sequence; refuse a lower one than ever activated (rollback) unless the
 *      operator signed an explicit rollback, and refuse a different release under the same sequence;
 *   3. keep a verified copy of the release in the node's own store;
 *   4. load the policy and record the activation in ONE atomic commit of the node state.
 * Killed at any instant, the node is on the old activation or the new one, never in between.
 */
export async function activateRelease(opts: ActivateOptions): Promise<ActivationResult> {
  const now = opts.now ?? (() => new Date());
  await initStateRoot(opts.stateRoot);
  const repo = openRepository(opts.ref, opts.repositoryOptions ?? {});
  const target = referenceTarget(opts.ref);
  const report = await verifyRelease(repo, target, {
    key: opts.key, maxAgeMs: opts.maxAgeMs, now: now(), requireLock: true, requirePolicy: true,
    ...(opts.ref.tag !== undefined ? { tag: opts.ref.tag } : {}),
  });
  const { lock, policy } = report;
  if (!lock || !policy) throw new Error("verifyRelease returned without lock or policy although both are required");
  const sequence = releaseSequence(report);
  const rollback = report.artifact.signature.optional[ROLLBACK_KEY] === "true";

  const bundleBytes = await repo.getBlob(policy.blob, { expectedSize: policy.size });
  crashPoint("activate-after-verify");
  await copyArtifact(repo, report.artifact.digest, new LayoutRepository(releaseStorePath(opts.stateRoot)), `seq-${sequence}`, { referrers: true });
  crashPoint("activate-after-store");

  const record: ActivationRecord = {
    ref: formatReference({ ...opts.ref, digest: report.artifact.digest }),
    artifact_digest: report.artifact.digest,
    lock_fingerprint: lock.lock.behavioral_fingerprint,
    policy_digest: lock.lock.policy_bundle.digest,
    sequence,
    rollback,
    signed_at: report.artifact.signature.signedAt,
    activated_at: now().toISOString(),
  };
  let changed = true;
  const result = await loadPolicy(opts.stateRoot, bundleBytes, {
    ...(opts.compile ? { compile: opts.compile } : {}),
    ...(opts.runtimeVersion ? { runtimeVersion: opts.runtimeVersion } : {}),
    now,
    update: (next, prev) => {
      if (!checkSequence(prev, record)) {
        // Same release again: only the policy slot may need restoring (after a manual `policy load`).
        changed = next !== prev;
        return next;
      }
      const higher = sequence > prev.highest_sequence;
      return {
        ...next, activation: record,
        highest_sequence: higher ? sequence : prev.highest_sequence,
        ...(higher ? { highest_artifact_digest: record.artifact_digest } : {}),
      };
    },
  });
  result.loaded.engine.dispose();
  return { activation: changed ? record : (result.state.activation ?? record), state: result.state, policyRef: result.loaded.ref, changed, verification: report };
}

function releaseSequence(report: VerifyReleaseReport): number {
  const raw = report.artifact.signature.optional[RELEASE_SEQUENCE_KEY];
  const n = typeof raw === "string" && /^[0-9]{1,15}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new RuntimeError("ACTIVATION_SEQUENCE_MISSING", `the release ${report.artifact.digest} carries no valid signed release sequence`, {
      details: { digest: report.artifact.digest, sequence: raw ?? null },
    });
  }
  return n;
}

/**
 * Rollback protection (TUF / Uptane client rules), checked inside the state
 * lock against what is durably recorded:
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
    throw new RuntimeError("ACTIVATION_EQUIVOCATION", `sequence ${rec.sequence} belongs to ${holder}; refusing ${rec.artifact_digest} under the same sequence`, {
      details: { sequence: rec.sequence, recorded: holder, offered: rec.artifact_digest },
    });
  }
  if (rec.sequence < prev.highest_sequence && !rec.rollback) {
    throw new RuntimeError("ACTIVATION_ROLLBACK_REFUSED", `release sequence ${rec.sequence} is older than ${prev.highest_sequence}, the highest this node has activated`, {
      details: { offered: rec.sequence, highest: prev.highest_sequence },
    });
  }
  return true;
}
