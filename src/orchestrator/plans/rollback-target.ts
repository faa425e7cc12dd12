import type { Kysely } from "kysely";
import type { CreateRolloutRequest } from "../../cpapi/index.js";
import type { Database } from "../db/schema.js";
import { RolloutError } from "../rollouts/index.js";

interface ReleaseFacts {
  release_id: string;
  channel: string;
  sequence: number;
  withdrawn_at: string | null;
  issued_at: string;
  repository: string;
  expires_at: string;
}

async function factsOf(db: Kysely<Database>, releaseId: string): Promise<ReleaseFacts | undefined> {
  const row = await db.selectFrom("releases").select(["release_id", "channel", "sequence", "withdrawn_at", "issued_at", "repository", "expires_at"]).where("release_id", "=", releaseId).executeTakeFirst();
  return row ? { ...row, sequence: Number(row.sequence) } : undefined;
}

function unreachable(message: string, details: Record<string, unknown>): RolloutError {
  return new RolloutError("ROLLOUT_ROLLBACK_UNREACHABLE", `previous_release_id: ${message}`, { field: "previous_release_id", ...details });
}

/**
 * The rollback-release model (docs/rollouts.md, "The rollback target"): a
 * node never activates a sequence at or below the one it runs (rollback-replay
 * protection, src/node/release-rules.ts), so a rollback to an older statement
 * could never be confirmed by a node that took the plan's release. A non-null
 * `previous_release_id` must therefore exist, not be withdrawn, be on the plan
 * release's channel (nodes follow one channel) and carry a sequence ABOVE the
 * plan release's: the previous content re-signed (`autonomy release
 * rollback`), usually published as standby. It must also name the plan
 * release's repository (a node refuses another repository's statement:
 * ACTIVATION_UNTRUSTED) and stay valid for at least the plan's stuck timeout
 * from now (a node refuses an expired statement: ACTIVATION_EXPIRED; one
 * expiring sooner could expire before the nodes confirm it). The caller runs
 * this inside the plan-insert transaction, so a withdraw cannot slip between
 * the check and the insert; 422 ROLLOUT_ROLLBACK_UNREACHABLE naming the field
 * otherwise. An
 * unknown plan release, or a previous release equal to it, is left to the
 * engine's own checks (ROLLOUT_RELEASE_UNKNOWN, ROLLOUT_PLAN_INVALID).
 */
export async function checkRollbackTarget(db: Kysely<Database>, req: Pick<CreateRolloutRequest, "release_id" | "previous_release_id" | "stuck_timeout_seconds">, now: number): Promise<void> {
  const prevId = req.previous_release_id;
  if (prevId === null || prevId === req.release_id) return;
  const plan = await factsOf(db, req.release_id);
  if (plan === undefined) return;
  const prev = await factsOf(db, prevId);
  if (prev === undefined) throw unreachable(`no published release ${prevId}`, { release_id: prevId });
  if (prev.withdrawn_at !== null) throw unreachable(`release ${prevId} was withdrawn at ${prev.withdrawn_at}`, { release_id: prevId });
  if (prev.channel !== plan.channel) {
    throw unreachable(`release ${prevId} is on channel ${prev.channel}, the plan's release ${plan.release_id} on ${plan.channel}: nodes follow one channel`, { release_id: prevId, channel: prev.channel });
  }
  if (prev.repository !== plan.repository) {
    throw unreachable(
      `release ${prevId} is for repository ${prev.repository}, the plan's release ${plan.release_id} for ${plan.repository}: a node refuses a statement for another repository (ACTIVATION_UNTRUSTED); re-sign the rollback for ${plan.repository}`,
      { release_id: prevId, repository: prev.repository, plan_release_repository: plan.repository },
    );
  }
  const validUntil = now + req.stuck_timeout_seconds * 1000;
  if (Date.parse(prev.expires_at) <= validUntil) {
    throw unreachable(
      `release ${prevId} expires at ${prev.expires_at}, before the plan's stuck timeout (${req.stuck_timeout_seconds} s) from now: a node refuses an expired statement (ACTIVATION_EXPIRED), so this rollback could not be confirmed; re-sign it with a later expiry`,
      { release_id: prevId, expires_at: prev.expires_at, stuck_timeout_seconds: req.stuck_timeout_seconds },
    );
  }
  if (prev.sequence <= plan.sequence) {
    throw unreachable(
      `release ${prevId} has sequence ${prev.sequence}, not above the plan's release ${plan.release_id} (sequence ${plan.sequence}): a node that activated the plan's release refuses any sequence at or below it, so this rollback could never be confirmed`,
      { release_id: prevId, sequence: prev.sequence, plan_release_sequence: plan.sequence },
    );
  }
  if (Date.parse(prev.issued_at) < Date.parse(plan.issued_at)) {
    throw unreachable(
      `release ${prevId} was issued at ${prev.issued_at}, before the plan's release ${plan.release_id} (${plan.issued_at}): a node that activated the plan's release refuses a statement issued before it, whatever its sequence; re-sign the rollback after the plan's release`,
      { release_id: prevId, issued_at: prev.issued_at, plan_release_issued_at: plan.issued_at },
    );
  }
}

/**
 * Where a member that runs nothing from this control plane waits until its
 * batch starts: the channel's newest live, non-standby release BELOW the plan's
 * release (what the fleet ran before it), or null when there is none. Never
 * the rollback target: it is above the plan's release, and a node on it would
 * refuse the plan's release when its batch starts.
 */
export async function baseReleaseOf(db: Kysely<Database>, planReleaseId: string): Promise<string | null> {
  const plan = await factsOf(db, planReleaseId);
  if (plan === undefined) return null;
  const row = await db
    .selectFrom("releases")
    .select("release_id")
    .where("channel", "=", plan.channel)
    .where("sequence", "<", plan.sequence)
    .where("withdrawn_at", "is", null)
    .where("standby", "=", 0)
    .orderBy("sequence", "desc")
    .limit(1)
    .executeTakeFirst();
  return row?.release_id ?? null;
}
