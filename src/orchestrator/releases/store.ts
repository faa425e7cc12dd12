import type { Release } from "../../cpapi/index.js";
import type { Envelope } from "../../cpapi/index.js";
import type { Store } from "../db/connect.js";
import { isUniqueViolation } from "../db/errors.js";
import { OrchestratorError, RequestInvalid } from "../errors.js";
import type { ReadRelease } from "./statement.js";
import type { ReleasesTable } from "./tables.js";

/** A release as the API returns it. */
export function releaseOfRow(row: ReleasesTable): Release {
  return {
    release_id: row.release_id,
    channel: row.channel,
    sequence: Number(row.sequence),
    image: row.image,
    image_digest: row.image_digest,
    repository: row.repository,
    lock_digest: row.lock_digest,
    lock_fingerprint: row.lock_fingerprint,
    bundle_digest: row.bundle_digest,
    statement: JSON.parse(row.statement) as Envelope,
    notes: row.notes,
    issued_at: row.issued_at,
    expires_at: row.expires_at,
    published_at: row.published_at,
    published_by: row.published_by,
    withdrawn_at: row.withdrawn_at,
    standby: Number(row.standby) === 1,
  };
}

/** What a publish did: created a release, or found the same statement already published. */
export interface PublishOutcome {
  created: boolean;
  release: Release;
}

/**
 * Stores a release, idempotently: the same statement on its (channel,
 * sequence) answers the stored release (created: false); a different
 * statement there is equivocation, RELEASE_CONFLICT, and is never stored. The
 * database's unique (channel, sequence) decides a race between two publishes.
 */
export async function publishRelease(store: Store, read: ReadRelease, extra: { image: string; notes: string; published_at: string; published_by: string; standby: boolean }): Promise<PublishOutcome> {
  const p = read.predicate;
  const existing = await findBySequence(store, p.channel, p.sequence);
  if (existing) return sameOrConflict(existing, read, extra.standby);
  await refuseWithdrawn(store, read.release_id);
  const row: ReleasesTable = {
    release_id: read.release_id,
    channel: p.channel,
    sequence: p.sequence,
    statement_digest: read.statement_digest,
    image: extra.image,
    image_digest: p.image.digest,
    repository: p.repository,
    lock_digest: p.lock.digest,
    lock_fingerprint: p.lock.behavioral_fingerprint,
    bundle_digest: p.policy_bundle.digest,
    statement: read.envelope_json,
    notes: extra.notes,
    issued_at: p.issued_at,
    expires_at: p.expires_at,
    published_at: extra.published_at,
    published_by: extra.published_by,
    withdrawn_at: null,
    standby: extra.standby ? 1 : 0,
  };
  try {
    await store.db.insertInto("releases").values(row).execute();
  } catch (e) {
    if (!isUniqueViolation(e)) throw e;
    const raced = await findBySequence(store, p.channel, p.sequence);
    if (!raced) throw e;
    return sameOrConflict(raced, read, extra.standby);
  }
  return { created: true, release: releaseOfRow(row) };
}

/**
 * The same statement again is a no-op; with the other `standby` value it is a 409 naming `standby`: whether a
 * release may become the channel's latest is part of what was published, and a silent flip either way would
 * change what unassigned nodes are offered (a standby rollback target turned latest, or the reverse).
 */
function sameOrConflict(existing: ReleasesTable, read: ReadRelease, standby: boolean): PublishOutcome {
  if (existing.statement_digest === read.statement_digest) {
    const stored = Number(existing.standby) === 1;
    if (stored !== standby) {
      throw new OrchestratorError(
        "RELEASE_CONFLICT",
        `standby: release ${existing.release_id} (channel ${existing.channel}, sequence ${existing.sequence}) was published with standby ${stored}; publishing the same statement with standby ${standby} would change whether it can be the channel's latest`,
        { details: { existing_release_id: existing.release_id, field: "standby" } },
      );
    }
    return { created: false, release: releaseOfRow(existing) };
  }
  throw new OrchestratorError(
    "RELEASE_CONFLICT",
    `channel ${existing.channel} already has release ${existing.release_id} at sequence ${existing.sequence} with a different statement (${existing.statement_digest}, this one is ${read.statement_digest})`,
    { details: { existing_release_id: existing.release_id } },
  );
}

/**
 * The exact statement of a withdrawn release again (its release id is the
 * statement's): 409, not a silent un-withdraw (withdraw is the operator's stop
 * button) nor the primary key's 500. A new statement is needed.
 */
async function refuseWithdrawn(store: Store, releaseId: string): Promise<void> {
  const row = await store.db.selectFrom("releases").select(["release_id", "channel", "sequence", "withdrawn_at"]).where("release_id", "=", releaseId).executeTakeFirst();
  if (row === undefined || row.withdrawn_at === null) return;
  throw new OrchestratorError(
    "RELEASE_CONFLICT",
    `release ${row.release_id} (channel ${row.channel}, sequence ${row.sequence}) was withdrawn at ${row.withdrawn_at}: the same statement cannot be published again; re-sign it at a new sequence (autonomy release rollback --to ${row.release_id} --sequence N) and publish that`,
    { details: { existing_release_id: row.release_id, withdrawn_at: row.withdrawn_at } },
  );
}

async function findBySequence(store: Store, channel: string, sequence: number): Promise<ReleasesTable | undefined> {
  return store.db.selectFrom("releases").selectAll().where("channel", "=", channel).where("sequence", "=", sequence).where("withdrawn_at", "is", null).executeTakeFirst();
}

/**
 * Withdraws a release (owner only): `latest` skips it from now on and its
 * (channel, sequence) is free for another statement. Idempotent: withdrawing a
 * withdrawn release answers it unchanged. A node that already activated it
 * keeps it (releases are advisory); a rollout moves it on.
 */
export async function withdrawRelease(store: Store, releaseId: string, now: string): Promise<Release> {
  await store.db.updateTable("releases").set({ withdrawn_at: now }).where("release_id", "=", releaseId).where("withdrawn_at", "is", null).execute();
  return getRelease(store, releaseId);
}

export async function getRelease(store: Store, releaseId: string): Promise<Release> {
  const row = await store.db.selectFrom("releases").selectAll().where("release_id", "=", releaseId).executeTakeFirst();
  if (!row) throw new OrchestratorError("RELEASE_NOT_FOUND", `no release ${releaseId}`);
  return releaseOfRow(row);
}

/** The newest sequence on a channel that is neither withdrawn nor standby (a standby release is a rollback target only), or undefined. */
export async function latestRelease(store: Store, channel: string): Promise<Release | undefined> {
  const row = await store.db.selectFrom("releases").selectAll().where("channel", "=", channel).where("withdrawn_at", "is", null).where("standby", "=", 0).orderBy("sequence", "desc").limit(1).executeTakeFirst();
  return row ? releaseOfRow(row) : undefined;
}

/** Position in the history: the last (sequence, channel) of a page. */
interface CursorPos {
  s: number;
  c: string;
}

function encodeCursor(pos: CursorPos): string {
  return Buffer.from(JSON.stringify(pos), "utf8").toString("base64url");
}

function decodeCursor(cursor: string): CursorPos {
  try {
    const v = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as Partial<CursorPos>;
    if (typeof v.s === "number" && Number.isSafeInteger(v.s) && typeof v.c === "string") return { s: v.s, c: v.c };
  } catch {
    // fall through: the same refusal
  }
  throw new RequestInvalid("invalid query: cursor: not a cursor this server returned (pass next_cursor back unchanged)");
}

/**
 * Release history, newest sequence first (ties across channels by channel
 * name), `limit` per page; `next_cursor` is null on the last page.
 */
export async function listReleases(store: Store, q: { channel?: string | undefined; cursor?: string | undefined; limit: number }): Promise<{ releases: Release[]; next_cursor: string | null }> {
  let query = store.db.selectFrom("releases").selectAll();
  if (q.channel !== undefined) query = query.where("channel", "=", q.channel);
  if (q.cursor !== undefined) {
    const pos = decodeCursor(q.cursor);
    query = query.where((eb) => eb.or([eb("sequence", "<", pos.s), eb.and([eb("sequence", "=", pos.s), eb("channel", ">", pos.c)])]));
  }
  const rows = await query.orderBy("sequence", "desc").orderBy("channel", "asc").limit(q.limit + 1).execute();
  const page = rows.slice(0, q.limit);
  const last = page.at(-1);
  return { releases: page.map(releaseOfRow), next_cursor: rows.length > q.limit && last ? encodeCursor({ s: Number(last.sequence), c: last.channel }) : null };
}
