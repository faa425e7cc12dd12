import type { FastifyReply, FastifyRequest, onSendAsyncHookHandler } from "fastify";
import type { Kysely } from "kysely";
import { isoTime } from "../../lib/index.js";
import type { AreaDeps } from "../area.js";
import type { Database } from "../db/schema.js";
import { OrchestratorError } from "../errors.js";
import { assignmentOf } from "../plans/store.js";

/**
 * Which releases the control plane offered each node, so that an ack can only
 * name one of them (review: a node acked a release of a channel it never
 * polled, and its path showed it "activated").
 *
 * The rule: a node may ack release R when GET /v1/releases/latest answered R
 * to its credential (200 with R, or 304 because its If-None-Match named R), or
 * R is its current rollout assignment (the plan decided R for it; the poll
 * would answer it). Recorded per (node, release), not per channel: a node's
 * assignment can come from any channel, and "polled channel X" would let a
 * node that asked for X ack releases X never answered it.
 */

/** Entries this process remembers as already recorded (cleared when full: a re-insert is a no-op). */
const SEEN_MAX = 100_000;

/** `"rel-…"` → `rel-…`; anything else (no ETag, a weak one) → undefined. */
function releaseOfEtag(etag: unknown): string | undefined {
  if (typeof etag !== "string" || etag.length < 3 || !etag.startsWith('"') || !etag.endsWith('"')) return undefined;
  return etag.slice(1, -1);
}

/**
 * The onSend hook of GET /v1/releases/latest (app.ts attaches it to that
 * route only): records the offer before the answer leaves, so an ack sent
 * after it always finds it. A 304 costs one Set lookup once recorded. A
 * failed insert fails the poll (503 on a busy store: the node polls again),
 * never an offer answered but not recorded.
 */
export function offerRecorder(deps: AreaDeps): onSendAsyncHookHandler {
  const seen = new Set<string>();
  return async (req: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const p = req.principal;
    const status = reply.statusCode;
    if (p?.kind !== "node" || (status !== 200 && status !== 304)) return payload;
    const releaseId = releaseOfEtag(reply.getHeader("etag"));
    if (releaseId === undefined) return payload;
    const key = `${p.node_id}\u0000${releaseId}`;
    if (seen.has(key)) return payload;
    await deps.store.db
      .insertInto("node_offers")
      .values({ node_id: p.node_id, release_id: releaseId, offered_at: isoTime(deps.clock) })
      .onConflict((oc) => oc.columns(["node_id", "release_id"]).doNothing())
      .execute();
    if (seen.size >= SEEN_MAX) seen.clear();
    seen.add(key);
    return payload;
  };
}

/** Refuses (409 ACK_RELEASE_NOT_OFFERED, naming release_id) an ack of a release never offered to the node. */
export async function assertOffered(tx: Kysely<Database>, nodeId: string, releaseId: string): Promise<void> {
  const offered = await tx.selectFrom("node_offers").select("release_id").where("node_id", "=", nodeId).where("release_id", "=", releaseId).executeTakeFirst();
  if (offered) return;
  const assigned = await assignmentOf(tx, nodeId);
  if (assigned?.release_id === releaseId) return;
  throw new OrchestratorError("ACK_RELEASE_NOT_OFFERED", `release ${releaseId} (release_id) was never offered to node ${nodeId}: neither GET /v1/releases/latest answered it to this node nor is it the node's rollout assignment`);
}
