import { sql } from "kysely";
import type { Kysely, Selectable } from "kysely";
import { LIFECYCLE_PHASES } from "../../cpapi/index.js";
import type { AckRequest, HeartbeatRequest, Labels, LifecyclePhase, Node } from "../../cpapi/index.js";
import { parseRfc3339 } from "../../lib/index.js";
import type { Dialect } from "../db/connect.js";
import type { Database } from "../db/schema.js";
import { OrchestratorError } from "../errors.js";
import { assertOffered } from "./offers.js";
import type { NodeAcksTable, NodesTable } from "./tables.js";

/** The store side of the nodes area: plain functions over Kysely, one transaction each. */

/** What toISOString() writes: already the stored form. */
const CANONICAL_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/**
 * RFC 3339 with any offset → UTC with milliseconds, the form every stored time
 * has (sorts as text). The input has passed the request schema (a real date);
 * a time already in the stored form is kept as is (most are: the hot path of
 * event ingestion, bench/ingest).
 */
export function utc(timestamp: string): string {
  if (CANONICAL_UTC.test(timestamp)) return timestamp;
  const ms = parseRfc3339(timestamp);
  if (ms === undefined) throw new Error(`not an RFC 3339 time: ${timestamp}`); // the request schema checked it
  return new Date(ms).toISOString();
}

function nodeNotFound(nodeId: string): OrchestratorError {
  return new OrchestratorError("NODE_NOT_FOUND", `node ${nodeId} is not enrolled on this control plane`);
}

/** Records a heartbeat: what the node runs now, and when it was last seen. */
export async function recordHeartbeat(db: Kysely<Database>, nodeId: string, hb: HeartbeatRequest, now: string): Promise<void> {
  if (hb.release_id !== null) {
    // A node reports only releases it got from here: a made-up id would show in GET /v1/nodes as what it runs.
    const known = await db.selectFrom("releases").select("release_id").where("release_id", "=", hb.release_id).executeTakeFirst();
    if (!known) throw new OrchestratorError("RELEASE_NOT_FOUND", `release ${hb.release_id} (release_id) is not on this control plane; report null for an activation that did not come from here`);
  }
  const r = await db
    .updateTable("nodes")
    .set({
      release_id: hb.release_id,
      activation_sequence: hb.activation_sequence,
      lock_fingerprint: hb.lock_fingerprint,
      boot_epoch: hb.boot_epoch,
      wal_generation: hb.wal_generation,
      runtime_version: hb.runtime_version,
      last_seen: now,
    })
    .where("node_id", "=", nodeId)
    .executeTakeFirst();
  if (r.numUpdatedRows === 0n) throw nodeNotFound(nodeId);
}

/**
 * Called inside the ack's transaction, after the ack row is written: another
 * area (rollouts) feeds the ack to whatever it drives. Throwing refuses the
 * ack (the transaction rolls back: neither the ack nor the hook's writes are
 * kept). The returned function, if any, runs after the commit.
 */
export type AckHook = (tx: Kysely<Database>, nodeId: string, ack: AckRequest) => Promise<(() => void) | undefined>;

/**
 * Records an ack in one transaction: the release must exist (404
 * RELEASE_NOT_FOUND naming it), the ack is appended to node_acks, the node's
 * latest ack moves forward unless this one is older (a retry), the hook runs,
 * and the release must have been offered to the node (409
 * ACK_RELEASE_NOT_OFFERED, see offers.ts); any refusal keeps nothing.
 */
export async function recordAck(db: Kysely<Database>, nodeId: string, ack: AckRequest, now: string, hook?: AckHook): Promise<void> {
  const at = utc(ack.at);
  const after = await db.transaction().execute(async (tx) => {
    const release = await tx.selectFrom("releases").select("release_id").where("release_id", "=", ack.release_id).executeTakeFirst();
    if (!release) throw new OrchestratorError("RELEASE_NOT_FOUND", `release ${ack.release_id} (release_id) is not on this control plane; a node acks only releases it got from here`);
    const node = await tx.selectFrom("nodes").select("node_id").where("node_id", "=", nodeId).executeTakeFirst();
    if (!node) throw nodeNotFound(nodeId);
    await tx
      .insertInto("node_acks")
      .values({ node_id: nodeId, release_id: ack.release_id, phase: ack.phase, detail: ack.detail, lock_fingerprint: ack.lock_fingerprint, at, received_at: now })
      .execute();
    await tx
      .updateTable("nodes")
      .set({ last_ack_release_id: ack.release_id, last_ack_phase: ack.phase, last_ack_detail: ack.detail, last_ack_at: at })
      .where("node_id", "=", nodeId)
      .where((eb) => eb.or([eb("last_ack_at", "is", null), eb("last_ack_at", "<=", at)]))
      .execute();
    const afterHook = hook ? await hook(tx, nodeId, ack) : undefined;
    // After the plan's hook, so a plan member gets the plan's more specific refusal (ROLLOUT_ILLEGAL_TRANSITION …).
    await assertOffered(tx, nodeId, ack.release_id);
    return afterHook;
  });
  after?.();
}

const isPhase = (p: string): p is LifecyclePhase => (LIFECYCLE_PHASES as readonly string[]).includes(p);

/** A stored row in the wire shape (cpapi Node). */
export function nodeOf(row: Selectable<NodesTable>): Node {
  const phase = row.last_ack_phase;
  return {
    node_id: row.node_id,
    labels: JSON.parse(row.labels) as Labels,
    release_id: row.release_id,
    activation_sequence: row.activation_sequence,
    lock_fingerprint: row.lock_fingerprint,
    boot_epoch: row.boot_epoch,
    wal_generation: row.wal_generation,
    runtime_version: row.runtime_version,
    enrolled_at: row.enrolled_at,
    last_seen: row.last_seen,
    last_ack:
      row.last_ack_release_id !== null && phase !== null && isPhase(phase) && row.last_ack_at !== null
        ? { release_id: row.last_ack_release_id, phase, detail: row.last_ack_detail ?? "", at: row.last_ack_at }
        : null,
  };
}

export interface NodeAck {
  ack_seq: number;
  release_id: string;
  phase: string;
  detail: string;
  lock_fingerprint: string | null;
  at: string;
  received_at: string;
}

/** How many of a node's acks GET /v1/nodes/:id returns (the newest ones, oldest first). */
export const NODE_ACKS_SHOWN = 200;

/** One node (without its acks), or NODE_NOT_FOUND: what heartbeat and ack answer. */
export async function nodeById(db: Kysely<Database>, nodeId: string): Promise<Node> {
  const row = await db.selectFrom("nodes").selectAll().where("node_id", "=", nodeId).executeTakeFirst();
  if (!row) throw nodeNotFound(nodeId);
  return nodeOf(row);
}

/** One node with its path (its acks, in arrival order), or NODE_NOT_FOUND. */
export async function getNode(db: Kysely<Database>, nodeId: string): Promise<Node & { acks: NodeAck[] }> {
  const row = await db.selectFrom("nodes").selectAll().where("node_id", "=", nodeId).executeTakeFirst();
  if (!row) throw nodeNotFound(nodeId);
  const acks: Selectable<NodeAcksTable>[] = await db.selectFrom("node_acks").selectAll().where("node_id", "=", nodeId).orderBy("ack_seq", "desc").limit(NODE_ACKS_SHOWN).execute();
  return { ...nodeOf(row), acks: acks.reverse().map(({ node_id: _n, ...a }) => a) };
}

export interface NodeQuery {
  /** Every pair must match (AND). */
  labels: readonly (readonly [string, string])[];
  /** The last node_id of the previous page. */
  after?: string;
  limit: number;
}

/** Nodes by node_id, filtered by labels; one more than `limit` is read to know whether a next page exists. */
export async function listNodes(db: Kysely<Database>, dialect: Dialect, q: NodeQuery): Promise<{ nodes: Node[]; last: string | undefined }> {
  let query = db.selectFrom("nodes").selectAll();
  for (const [key, value] of q.labels) {
    // Label keys are [a-z0-9./_-] (cpapi Labels), so the quoted JSON path cannot be escaped from.
    // PostgreSQL: containment, which the GIN index on labels::jsonb serves (0010); label values are strings, so it matches as ->> = would.
    query = dialect === "postgres" ? query.where(sql<boolean>`labels::jsonb @> ${JSON.stringify({ [key]: value })}::jsonb`) : query.where(sql<boolean>`json_extract(labels, ${`$."${key}"`}) = ${value}`);
  }
  if (q.after !== undefined) query = query.where("node_id", ">", q.after);
  const rows = await query.orderBy("node_id").limit(q.limit + 1).execute();
  const page = rows.slice(0, q.limit);
  return { nodes: page.map(nodeOf), last: rows.length > q.limit ? page.at(-1)?.node_id : undefined };
}
