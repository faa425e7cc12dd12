import type { KeyObject } from "node:crypto";
import type { DsseEnvelope } from "../sign/index.js";
import { DEFAULT_CHANNEL, DEFAULT_EXPIRES_IN_MS } from "./sign-release.js";
import { signStatement } from "./statement.js";
import type { ReleasePredicate } from "./statement.js";

/** What one release binds besides its sequence, channel, repository and validity: the image, the lock, the policy bundle. */
export type ReleaseContent = Pick<ReleasePredicate, "image" | "lock" | "policy_bundle">;

/** One signed release statement: the DSSE envelope, the predicate it signs, the digest of the statement bytes. */
export interface SignedReleaseStatement {
  envelope: DsseEnvelope;
  predicate: ReleasePredicate;
  digest: string;
}

export interface RollbackTrioOptions {
  /** What the fleet runs before the rollout (and gets back on a rollback). */
  base: ReleaseContent;
  /** What the rollout installs. */
  candidate: ReleaseContent;
  keys: readonly KeyObject[];
  /** The signed identity nodes pull from. */
  repository: string;
  /** Default {@link DEFAULT_CHANNEL}. */
  channel?: string;
  /** The base's sequence (default 1): the candidate is one above, the rollback two above. */
  baseSequence?: number;
  now: Date;
  /** Validity of the three statements from `now` (default {@link DEFAULT_EXPIRES_IN_MS}). */
  expiresInMs?: number;
}

/** The trio, in sequence order: base < candidate < rollback; rollback binds exactly the base's content. */
export interface RollbackTrio {
  base: SignedReleaseStatement;
  candidate: SignedReleaseStatement;
  rollback: SignedReleaseStatement;
}

/**
 * Signs the three release statements a rollout with a rollback target needs
 * (docs/rollouts.md, "The rollback target"): the base at sequence n, the
 * candidate at n+1 and the rollback at n+2, which binds the base's image,
 * lock and bundle again. A node that activated the candidate refuses the
 * base's own statement (its sequence is lower: rollback-replay protection),
 * but accepts the rollback as an ordinary upgrade. Publish the rollback with
 * `standby: true` and name it as the plan's `previous_release_id`.
 *
 * Pure (no registry, no files): the same statements `autonomy sign` and
 * `autonomy release rollback` write for content already pushed, for tests
 * and labs that sign their own trio.
 */
export function signRollbackTrio(o: RollbackTrioOptions): RollbackTrio {
  const n = o.baseSequence ?? 1;
  const common = {
    channel: o.channel ?? DEFAULT_CHANNEL,
    repository: o.repository,
    issued_at: o.now.toISOString(),
    expires_at: new Date(o.now.getTime() + (o.expiresInMs ?? DEFAULT_EXPIRES_IN_MS)).toISOString(),
  };
  const sign = (content: ReleaseContent, sequence: number): SignedReleaseStatement => {
    const predicate: ReleasePredicate = { sequence, ...common, image: content.image, lock: content.lock, policy_bundle: content.policy_bundle };
    const s = signStatement(predicate, o.keys);
    return { envelope: s.envelope, predicate, digest: s.digest };
  };
  return { base: sign(o.base, n), candidate: sign(o.candidate, n + 1), rollback: sign(o.base, n + 2) };
}
