import { formatReference, openRepository, referenceTarget } from "../oci/index.js";
import type { Reference, RepositoryOptions } from "../oci/index.js";
import type { EngineCompiler } from "../policy/index.js";
import { checkRelease, commitActivation, initStateRoot, openReleaseStore, readNodeState, recordEquivocation, requireTrustRoot } from "../node/index.js";
import type { ActivationRecord, NodeState, TrustRoot } from "../node/index.js";
import { verifyRelease } from "../supplychain/index.js";
import type { VerifyReleaseReport } from "../supplychain/index.js";
import { AutonomyError, crashPoint, dateOf, systemClock } from "../lib/index.js";
import type { Clock } from "../lib/index.js";
import { DEFAULT_RELEASE_STORE_BUDGET_BYTES, storeVerifiedRelease } from "./release-store.js";

export interface ActivateOptions {
  ref: Reference;
  stateRoot: string;
  /** Clock for expiry and `activated_at`. Default {@link systemClock}. */
  clock?: Clock;
  repositoryOptions?: RepositoryOptions;
  compile?: EngineCompiler;
  runtimeVersion?: string;
  /** Bound on what this activation writes into the node's release store; default {@link DEFAULT_RELEASE_STORE_BUDGET_BYTES}. */
  storeBudgetBytes?: number;
  /**
   * Called once the release passed verification and the node's rules
   * (rollback, expiry, equivocation), before anything is stored or
   * committed: the release poller's `verify_passed` / `activation_started`
   * boundary. A failure before it is the release's (verification), after it
   * the activation's.
   */
  onVerified?: (report: VerifyReleaseReport) => Promise<void> | void;
}

export interface ActivationResult {
  activation: ActivationRecord;
  state: NodeState;
  policyRef: string;
  /** False when this exact statement was already active (re-activation is a no-op). */
  changed: boolean;
  verification: VerifyReleaseReport;
  /** The trust root the release was verified against. */
  trust: TrustRoot;
}

/**
 * Activates a release on this node, trusting only what its signed release
 * statement binds:
 *   1. verify it against the node's trust root (keys, threshold, channel,
 *      repository): the statement, then exactly the lock and bundle it names;
 *   2. apply the node's rules before anything is stored (rollback, expiry,
 *      equivocation: recorded), so a refused release never enters the store;
 *   3. keep a copy of exactly the verified release in the node's own store
 *      (image, the statement's envelope, its lock and bundle; no other
 *      referrer), within a byte budget;
 *   4. hand the bundle the statement names and the statement to the node
 *      (src/node: commitActivation), which applies the rules again inside its
 *      state lock and commits policy, activation and floor in ONE atomic commit.
 * Every check uses one start time (TUF's fixed update start time).
 * Killed at any instant, the node is on the old activation or the new one, never in between.
 */
export async function activateRelease(opts: ActivateOptions): Promise<ActivationResult> {
  const clock = opts.clock ?? systemClock;
  const startedAt = dateOf(clock);
  // Refused before anything is created under the state root when the node trusts nobody.
  const trust = await requireTrustRoot(opts.stateRoot);
  await initStateRoot(opts.stateRoot);
  const repo = openRepository(opts.ref, opts.repositoryOptions ?? {});
  const report = await verifyRelease(repo, referenceTarget(opts.ref), {
    trusted: trust.keys.map(({ keyId, key }) => ({ keyId, key })), threshold: trust.threshold,
    channel: trust.channel, repository: trust.repository, now: startedAt,
    ...(opts.ref.tag !== undefined ? { tag: opts.ref.tag } : {}),
  }).catch((e: unknown) => recordRegistryEquivocation(opts.stateRoot, e, startedAt));
  const { statement } = report;
  crashPoint("activate-after-verify");
  await checkRelease(opts.stateRoot, statement, startedAt);
  await opts.onVerified?.(report);
  await storeVerifiedRelease(repo, report, await openReleaseStore(opts.stateRoot), `seq-${statement.predicate.sequence}`, opts.storeBudgetBytes ?? DEFAULT_RELEASE_STORE_BUDGET_BYTES);
  crashPoint("activate-after-store");
  const committed = await commitActivation(opts.stateRoot, report.policy.bytes, { ref: formatReference({ ...opts.ref, digest: report.artifact.digest }), statement }, {
    ...(opts.compile ? { compile: opts.compile } : {}),
    ...(opts.runtimeVersion ? { runtimeVersion: opts.runtimeVersion } : {}),
    clock, startedAt,
  });
  return { ...committed, verification: report, trust };
}

/**
 * Two valid statements under one sequence found in the registry itself
 * (STATEMENT_EQUIVOCATION from verification): refused there, and recorded in
 * the node state like the node's own equivocations, so the operator sees it.
 */
async function recordRegistryEquivocation(stateRoot: string, e: unknown, at: Date): Promise<never> {
  if (e instanceof AutonomyError && e.code === "STATEMENT_EQUIVOCATION") {
    const { sequence, digests } = e.details as { sequence?: unknown; digests?: unknown };
    const held = (await readNodeState(stateRoot)).highest_statement_digest;
    if (typeof sequence === "number" && Array.isArray(digests) && digests.length >= 2) {
      const all = digests.filter((d): d is string => typeof d === "string");
      const recorded = held !== undefined && all.includes(held) ? held : all[0];
      const offered = all.find((d) => d !== recorded);
      if (recorded !== undefined && offered !== undefined) await recordEquivocation(stateRoot, { sequence, recorded, offered, at: at.toISOString() });
    }
  }
  throw e;
}
