import { createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { copyArtifact, referenceTarget } from "../oci/index.js";
import type { OciRepository, Reference } from "../oci/index.js";
import { OciError } from "../oci/index.js";
import { VerificationError } from "../sign/index.js";
import { AutonomyError, UsageError } from "../lib/index.js";
import { DEFAULT_CHANNEL, signRelease } from "./sign-release.js";
import type { SignReleaseResult } from "./sign-release.js";
import { findStatements } from "./find-statements.js";
import type { ReleaseTrust } from "./find-statements.js";
import type { ReleaseStatement } from "./statement.js";
import { trustedKeys } from "./trust.js";
import { verifyRelease } from "./verify-release.js";

export interface RollbackOptions {
  /** The older release whose content comes back (its statement is verified with the public half of `keys`). */
  older: { repo: OciRepository; target: string };
  /** Where the new release is published: the reference nodes activate (its tag is moved to the older image). */
  target: { repo: OciRepository; ref: Reference };
  keys: readonly KeyObject[];
  /**
   * The older statement whose content comes back. Required when the older image
   * carries statements at more than one sequence (byte-identical images pushed
   * twice, a policy-only change): refused as ambiguous otherwise, listing them.
   */
  toSequence?: number;
  /** The NEW sequence: above the older release's and above the target's current one. */
  sequence: number;
  repository: string;
  channel?: string;
  expiresInMs?: number;
  now: Date;
  onProgress?: (line: string) => void;
}

/** The older release restored: exactly one verified statement and the lock and bundle bytes it names. */
export interface RestoredRelease {
  artifact: { digest: string; mediaType: string };
  statement: ReleaseStatement;
  lock: { bytes: Uint8Array };
  policy: { bytes: Uint8Array };
}

export interface RollbackResult {
  /** The older release: the statement chosen (by `toSequence`) names the content re-signed. */
  older: RestoredRelease;
  /** The target's release before the rollback, when one verified. */
  replaced?: { sequence: number; digest: string };
  signed: SignReleaseResult;
}

/**
 * Rollback as a new release (TUF: versions only go up): the older release's
 * image, lock bytes and bundle bytes, exactly as ONE named verified statement
 * (`toSequence`) names them — never "whatever is highest" for that image —
 * re-signed under a new, higher sequence and published at the target.
 * Nodes accept it as an ordinary upgrade; the old statement itself stays
 * refused for ever. An older statement that has expired cannot be verified
 * here: sign its lock and bundle explicitly (`autonomy sign … --lock
 * --policy-bundle --sequence N`), the equivalent documented procedure.
 */
export async function rollbackRelease(opts: RollbackOptions): Promise<RollbackResult> {
  const say = opts.onProgress ?? ((): void => undefined);
  const channel = opts.channel ?? DEFAULT_CHANNEL;
  const trust = { trusted: trustedKeys(opts.keys.map((k) => createPublicKey(k))), threshold: 1, channel, repository: opts.repository, now: opts.now };
  const older = await olderRelease(opts.older.repo, opts.older.target, trust, opts.toSequence);
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

/**
 * The one statement of the older image to restore (valid under the signer's
 * public keys), and the lock and bundle bytes it names, fetched by digest.
 * Several sequences and no `toSequence`: refused, listing them.
 */
async function olderRelease(repo: OciRepository, target: string, trust: ReleaseTrust, toSequence: number | undefined): Promise<RestoredRelease> {
  const manifest = await repo.getManifest(target);
  const artifact = { digest: manifest.digest, mediaType: manifest.mediaType };
  const { valid, skipped } = await findStatements(repo, artifact.digest, trust);
  if (valid.length === 0) {
    throw new VerificationError("STATEMENT_MISSING", `no valid release statement for the older image ${artifact.digest} in ${repo.location}${skipped.length > 0 ? `; skipped: ${skipped.map((x) => x.reason).join("; ")}` : ""}`,
      "an expired statement cannot be restored this way: sign the older image naming its lock and bundle (`autonomy sign … --lock --policy-bundle --sequence N`)", { details: { digest: artifact.digest, skipped } });
  }
  const sequences = [...new Set(valid.map((x) => x.predicate.sequence))].sort((a, b) => a - b);
  if (toSequence === undefined && sequences.length > 1) {
    throw new UsageError(`the older image ${artifact.digest} carries release statements at sequences ${sequences.join(", ")}: which one to restore is ambiguous`,
      `name the statement whose lock and bundle come back: --to-sequence ${sequences.join(" or --to-sequence ")}`);
  }
  const wanted = toSequence ?? sequences[0];
  const chosen = valid.filter((x) => x.predicate.sequence === wanted);
  if (chosen.length === 0) {
    throw new UsageError(`the older image ${artifact.digest} carries no valid release statement at sequence ${wanted} (found: ${sequences.join(", ")})`, `pass --to-sequence with one of ${sequences.join(", ")}`);
  }
  const digests = [...new Set(chosen.map((x) => x.digest))];
  if (digests.length > 1) {
    throw new VerificationError("STATEMENT_EQUIVOCATION", `${digests.length} different valid release statements claim sequence ${wanted} for ${artifact.digest}: ${digests.join(", ")}`,
      { details: { digest: artifact.digest, sequence: wanted, digests } });
  }
  const statement = chosen[0] as ReleaseStatement;
  const p = statement.predicate;
  return {
    artifact, statement,
    lock: { bytes: await namedBlob(repo, p.lock.digest, p.lock.size, "LOCK_MISSING", "activation lock") },
    policy: { bytes: await namedBlob(repo, p.policy_bundle.digest, p.policy_bundle.size, "POLICY_MISSING", "policy bundle") },
  };
}

/** A blob by the digest and size the chosen statement names (the read verifies both). */
async function namedBlob(repo: OciRepository, digest: string, size: number, code: "LOCK_MISSING" | "POLICY_MISSING", what: string): Promise<Uint8Array> {
  try {
    return await repo.getBlob(digest, { expectedSize: size });
  } catch (e) {
    if (e instanceof OciError && e.code === "OCI_NOT_FOUND") {
      throw new VerificationError(code, `the older release statement names the ${what} ${digest} but ${repo.location} does not hold it`, { details: { artifact: what, digest } });
    }
    throw e;
  }
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
