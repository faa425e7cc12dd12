import type { KeyObject } from "node:crypto";
import { copyArtifact, formatReference, openRepository, referenceTarget, repositoryName } from "../oci/index.js";
import type { Reference, RepositoryOptions } from "../oci/index.js";
import type { EngineCompiler } from "../policy/index.js";
import { commitActivation, initStateRoot, openReleaseStore } from "../node/index.js";
import type { ActivationRecord, NodeState } from "../node/index.js";
import { releaseRepository, trustedKeys, verifyRelease, DEFAULT_CHANNEL } from "../supplychain/index.js";
import type { VerifyReleaseReport } from "../supplychain/index.js";
import { crashPoint, dateOf, systemClock } from "../lib/index.js";
import type { Clock } from "../lib/index.js";

export interface ActivateOptions {
  ref: Reference;
  key: KeyObject;
  stateRoot: string;
  maxAgeMs: number;
  /** Clock for the freshness check and `activated_at`. Default {@link systemClock}. */
  clock?: Clock;
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

/**
 * Activates a signed release on this node:
 *   1. verify it fail-closed (signatures, digests, lock pins this image, bundle is the one the lock names);
 *   2. read the signed release sequence (and whether it is signed as a rollback);
 *   3. keep a verified copy of the release in the node's own store;
 *   4. hand the policy and the activation record to the node (src/node: commitActivation), which,
 *      inside its state lock, refuses a lower sequence than ever activated unless signed as a
 *      rollback and a different release under a recorded sequence, then commits both in ONE
 *      atomic commit of the node state.
 * Killed at any instant, the node is on the old activation or the new one, never in between.
 */
export async function activateRelease(opts: ActivateOptions): Promise<ActivationResult> {
  const clock = opts.clock ?? systemClock;
  const now = (): Date => dateOf(clock);
  await initStateRoot(opts.stateRoot);
  const repo = openRepository(opts.ref, opts.repositoryOptions ?? {});
  const target = referenceTarget(opts.ref);
  // Interim trust (the node helper replaces it with configured keys, threshold, channel and repository).
  const report = await verifyRelease(repo, target, {
    trusted: trustedKeys([opts.key]), threshold: 1, channel: DEFAULT_CHANNEL,
    repository: releaseRepository(opts.ref) ?? repositoryName(opts.ref), now: now(),
    ...(opts.ref.tag !== undefined ? { tag: opts.ref.tag } : {}),
  });
  const { lock, policy } = report;
  const sequence = report.statement.predicate.sequence;
  const rollback = false;

  const bundleBytes = policy.bytes;
  crashPoint("activate-after-verify");
  await copyArtifact(repo, report.artifact.digest, await openReleaseStore(opts.stateRoot), `seq-${sequence}`, { referrers: true });
  crashPoint("activate-after-store");

  const record: ActivationRecord = {
    ref: formatReference({ ...opts.ref, digest: report.artifact.digest }),
    artifact_digest: report.artifact.digest,
    lock_fingerprint: lock.lock.behavioral_fingerprint,
    policy_digest: lock.lock.policy_bundle.digest,
    sequence,
    rollback,
    signed_at: report.statement.predicate.issued_at,
    activated_at: now().toISOString(),
  };
  const committed = await commitActivation(opts.stateRoot, bundleBytes, record, {
    ...(opts.compile ? { compile: opts.compile } : {}),
    ...(opts.runtimeVersion ? { runtimeVersion: opts.runtimeVersion } : {}),
    clock,
  });
  return { ...committed, verification: report };
}
