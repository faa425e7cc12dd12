import { createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { copyArtifact, referenceTarget } from "../oci/index.js";
import type { OciRepository, Reference } from "../oci/index.js";
import { AutonomyError, UsageError } from "../lib/index.js";
import { DEFAULT_CHANNEL, signRelease } from "./sign-release.js";
import type { SignReleaseResult } from "./sign-release.js";
import { trustedKeys } from "./trust.js";
import { verifyRelease } from "./verify-release.js";
import type { VerifyReleaseReport } from "./verify-release.js";

export interface RollbackOptions {
  /** The older release whose content comes back (its statement is verified with the public half of `keys`). */
  older: { repo: OciRepository; target: string };
  /** Where the new release is published: the reference nodes activate (its tag is moved to the older image). */
  target: { repo: OciRepository; ref: Reference };
  keys: readonly KeyObject[];
  /** The NEW sequence: above the older release's and above the target's current one. */
  sequence: number;
  repository: string;
  channel?: string;
  expiresInMs?: number;
  now: Date;
  onProgress?: (line: string) => void;
}

export interface RollbackResult {
  /** The older release as verified: its statement names the content re-signed. */
  older: VerifyReleaseReport;
  /** The target's release before the rollback, when one verified. */
  replaced?: { sequence: number; digest: string };
  signed: SignReleaseResult;
}

/**
 * Rollback as a new release (TUF: versions only go up): the older release's
 * image, lock bytes and bundle bytes, exactly as its verified statement names
 * them, re-signed under a new, higher sequence and published at the target.
 * Nodes accept it as an ordinary upgrade; the old statement itself stays
 * refused for ever. An older statement that has expired cannot be verified
 * here: sign its lock and bundle explicitly (`autonomy sign … --lock
 * --policy-bundle --sequence N`), the equivalent documented procedure.
 */
export async function rollbackRelease(opts: RollbackOptions): Promise<RollbackResult> {
  const say = opts.onProgress ?? ((): void => undefined);
  const channel = opts.channel ?? DEFAULT_CHANNEL;
  const trust = { trusted: trustedKeys(opts.keys.map((k) => createPublicKey(k))), threshold: 1, channel, repository: opts.repository, now: opts.now };
  const older = await verifyRelease(opts.older.repo, opts.older.target, trust);
  const op = older.statement.predicate;
  say(`older release: ${older.artifact.digest} at sequence ${op.sequence}, policy ${op.policy_bundle.name}@${op.policy_bundle.version}`);
  if (opts.sequence <= op.sequence) throw notHigher(opts.sequence, op.sequence, "the older release");
  const replaced = await currentRelease(opts.target, trust);
  if (replaced && opts.sequence <= replaced.sequence) throw notHigher(opts.sequence, replaced.sequence, "the release the target carries now");
  const tag = opts.target.ref.digest === undefined ? (opts.target.ref.tag ?? "latest") : undefined;
  if (tag === undefined && opts.target.ref.digest !== older.artifact.digest) {
    throw new UsageError(`the target names digest ${opts.target.ref.digest ?? "?"}, not the older image ${older.artifact.digest}`, "name the target by tag (the tag nodes activate); it is moved to the older image");
  }
  // Nodes pulling the tag between this copy and the statement see only the older, lower statements: refused, never activated.
  await copyArtifact(opts.older.repo, older.artifact.digest, opts.target.repo, tag, { referrers: false });
  say(`${tag ?? opts.target.ref.digest ?? ""} now points at ${older.artifact.digest}`);
  const signed = await signRelease(opts.target.repo, opts.target.ref, {
    keys: opts.keys, now: opts.now, sequence: opts.sequence, repository: opts.repository, channel,
    ...(opts.expiresInMs !== undefined ? { expiresInMs: opts.expiresInMs } : {}),
    lock: older.lock.bytes, bundle: { bytes: older.policy.bytes, name: op.policy_bundle.name, version: op.policy_bundle.version },
    onProgress: say,
  });
  return { older, ...(replaced ? { replaced } : {}), signed };
}

/** The release the target verifies as now, if any (a target without one is fine: the rollback creates it). */
async function currentRelease(target: RollbackOptions["target"], trust: Parameters<typeof verifyRelease>[2]): Promise<{ sequence: number; digest: string } | undefined> {
  try {
    const r = await verifyRelease(target.repo, referenceTarget(target.ref), trust);
    return { sequence: r.statement.predicate.sequence, digest: r.artifact.digest };
  } catch (e) {
    // Best effort: nodes enforce the floor anyway; a target with no verifiable release is the first one.
    if (e instanceof AutonomyError) return undefined;
    throw e;
  }
}

function notHigher(sequence: number, than: number, what: string): UsageError {
  return new UsageError(`--sequence ${sequence} is not above ${than}, the sequence of ${what}`, `a rollback is a new release: choose a sequence above every one published (e.g. --sequence ${than + 1} or higher)`);
}
