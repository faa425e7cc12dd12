import type { ReleaseStatement } from "../supplychain/index.js";
import { NodeError } from "./errors.js";
import { MAX_EQUIVOCATIONS } from "./state-schema.js";
import type { ActivationRecord, EquivocationRecord, NodeState } from "./state-schema.js";
import { meetsThreshold } from "./trust.js";
import type { TrustRoot } from "./trust.js";

/** "new": accept and move the floor; "same": this exact statement is the one at the floor (idempotent no-op). */
export type Verdict = "new" | "same";

/**
 * The node's rules for a verified release statement, as a TUF client applies
 * them to its timestamp/targets metadata (pure: the caller runs it inside the
 * state lock, against the state it is about to replace):
 *   1. still trusted: channel and repository are the node's, and the trusted
 *      keys that signed it still meet the threshold (the trust root may have
 *      changed since the statement was verified);
 *   2. not expired at the node's clock ("indefinite freeze");
 *   3. sequence below the floor → rollback, refused for ever (a replayed old
 *      statement, even one that was once active);
 *   4. sequence at the floor → the byte-identical statement is a no-op, any
 *      other is equivocation (refused; the caller records it);
 *   5. sequence above the floor but issued before the newest accepted
 *      statement → refused (an older statement re-signed with a higher number
 *      is not newer).
 */
export function judgeRelease(prev: NodeState, s: ReleaseStatement, trust: TrustRoot, now: Date): Verdict {
  const p = s.predicate;
  if (p.channel !== trust.channel || p.repository !== trust.repository) {
    throw new NodeError("ACTIVATION_UNTRUSTED", `the statement is for ${p.repository} on channel ${p.channel}; this node follows ${trust.repository} on channel ${trust.channel}`, {
      details: { channel: p.channel, repository: p.repository, trusted_channel: trust.channel, trusted_repository: trust.repository },
    });
  }
  if (!meetsThreshold(trust, s.keyIds)) {
    throw new NodeError("ACTIVATION_UNTRUSTED", `the keys that signed statement ${s.digest} no longer meet this node's threshold of ${trust.threshold}`, { details: { key_ids: s.keyIds, threshold: trust.threshold } });
  }
  if (Date.parse(p.expires_at) <= now.getTime()) {
    throw new NodeError("ACTIVATION_EXPIRED", `the release statement for sequence ${p.sequence} expired at ${p.expires_at} (node clock ${now.toISOString()})`, {
      details: { sequence: p.sequence, expires_at: p.expires_at, now: now.toISOString(), statement: s.digest },
    });
  }
  if (p.sequence < prev.highest_sequence) {
    throw new NodeError("ACTIVATION_ROLLBACK_REFUSED", `release sequence ${p.sequence} is below ${prev.highest_sequence}, the highest this node has accepted`, {
      details: { offered: p.sequence, highest: prev.highest_sequence, statement: s.digest },
    });
  }
  if (p.sequence === prev.highest_sequence) return atFloor(prev, s);
  if (prev.newest_issued_at !== undefined && Date.parse(p.issued_at) < Date.parse(prev.newest_issued_at)) {
    throw new NodeError("ACTIVATION_ROLLBACK_REFUSED", `the statement for sequence ${p.sequence} was issued at ${p.issued_at}, before ${prev.newest_issued_at}, the newest this node has accepted`, {
      details: { offered: p.sequence, issued_at: p.issued_at, newest_issued_at: prev.newest_issued_at, statement: s.digest },
    });
  }
  return "new";
}

function atFloor(prev: NodeState, s: ReleaseStatement): Verdict {
  if (prev.highest_statement_digest === s.digest) return "same";
  // Migrated from version 1: the release at the floor was recorded by its image only; the same image re-published as a statement is that release.
  if (prev.highest_statement_digest === undefined && prev.legacy_highest_artifact_digest === s.predicate.image.digest) return "new";
  const recorded = prev.highest_statement_digest ?? prev.legacy_highest_artifact_digest;
  if (recorded === undefined) return "new";
  throw new NodeError("ACTIVATION_EQUIVOCATION", `sequence ${s.predicate.sequence} is already held by statement ${recorded}; refusing the different statement ${s.digest} under the same sequence`, {
    details: { sequence: s.predicate.sequence, recorded, offered: s.digest },
  });
}

/** The activation record for an accepted statement. */
export function activationRecordOf(ref: string, s: ReleaseStatement, activatedAt: Date): ActivationRecord {
  const p = s.predicate;
  return {
    ref, statement_digest: s.digest, sequence: p.sequence, channel: p.channel, repository: p.repository,
    issued_at: p.issued_at, expires_at: p.expires_at,
    image_digest: p.image.digest, lock_digest: p.lock.digest, lock_fingerprint: p.lock.behavioral_fingerprint,
    policy_digest: p.policy_bundle.digest, policy_name: p.policy_bundle.name, policy_version: p.policy_bundle.version,
    key_ids: [...s.keyIds].sort(), activated_at: activatedAt.toISOString(),
  };
}

/** The floor moves with the activation, in the same state: highest sequence, its statement, newest issued_at. */
export function withActivation(next: NodeState, rec: ActivationRecord): NodeState {
  const newest = next.newest_issued_at === undefined || Date.parse(rec.issued_at) > Date.parse(next.newest_issued_at) ? rec.issued_at : next.newest_issued_at;
  const { legacy_highest_artifact_digest: _legacy, ...rest } = next;
  return { ...rest, activation: rec, highest_sequence: rec.sequence, highest_statement_digest: rec.statement_digest, newest_issued_at: newest };
}

/** Appends an equivocation for the operator (the same offer seen again only refreshes its time); the list stays bounded. */
export function withEquivocation(prev: NodeState, e: EquivocationRecord): NodeState {
  const others = prev.equivocations.filter((x) => !(x.sequence === e.sequence && x.offered === e.offered));
  return { ...prev, equivocations: [...others, e].slice(-MAX_EQUIVOCATIONS) };
}
