import { ROLES } from "../../cpapi/index.js";
import type { Role, TokenSummary } from "../../cpapi/index.js";
import type { Labels } from "../../cpapi/index.js";
import { safeEqual } from "../../lib/index.js";
import type { Clock } from "../../lib/index.js";
import type { Store } from "../db/connect.js";
import { isUniqueViolation } from "../db/errors.js";
import { withExclusiveTransaction, withWriteTransaction } from "../db/write-lock.js";
import { OrchestratorError } from "../errors.js";
import { hashToken, newSecret, parseSecret } from "../auth/index.js";

/** A token just created: the secret is here only. */
export interface IssuedToken {
  token_id: string;
  token: string;
  role: Role;
  name: string;
  expires_at: string | null;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** Creates an operator token; the store keeps its SHA-256 only. */
export async function createOperatorToken(store: Store, clock: Clock, req: { role: Role; name: string; ttl_seconds?: number | undefined }): Promise<IssuedToken> {
  const s = newSecret("aop");
  const now = clock.now();
  const expires_at = req.ttl_seconds === undefined ? null : iso(now + req.ttl_seconds * 1000);
  await store.db.insertInto("tokens").values({ id: s.id, name: req.name, role: req.role, hash: s.hash, created_at: iso(now), expires_at, revoked_at: null }).execute();
  return { token_id: s.id, token: s.token, role: req.role, name: req.name, expires_at };
}

/**
 * On a store with no operator token at all, creates one `owner` token named
 * `bootstrap` and returns it (the caller shows it once); otherwise undefined.
 * Under the exclusive lock, so two servers starting at once make one token.
 */
export async function bootstrapOwnerToken(store: Store, clock: Clock): Promise<IssuedToken | undefined> {
  return withExclusiveTransaction(store, async (tx) => {
    const any = await tx.selectFrom("tokens").select("id").limit(1).executeTakeFirst();
    if (any) return undefined;
    const s = newSecret("aop");
    const created_at = iso(clock.now());
    await tx.insertInto("tokens").values({ id: s.id, name: "bootstrap", role: "owner", hash: s.hash, created_at, expires_at: null, revoked_at: null }).execute();
    return { token_id: s.id, token: s.token, role: "owner" as const, name: "bootstrap", expires_at: null };
  });
}

/** Revokes an operator token (DELETE /v1/tokens/:token_id). True when it was live. */
export async function revokeOperatorToken(store: Store, clock: Clock, tokenId: string): Promise<boolean> {
  const r = await store.db.updateTable("tokens").set({ revoked_at: iso(clock.now()) }).where("id", "=", tokenId).where("revoked_at", "is", null).executeTakeFirst();
  return r.numUpdatedRows > 0n;
}

const isRole = (r: string): r is Role => (ROLES as readonly string[]).includes(r);

/** Every operator token without its hash, oldest first (GET /v1/tokens). */
export async function listOperatorTokens(store: Store): Promise<TokenSummary[]> {
  const rows = await store.db.selectFrom("tokens").select(["id", "name", "role", "created_at", "expires_at", "revoked_at"]).orderBy("created_at").orderBy("id").execute();
  return rows.flatMap((r) => (isRole(r.role) ? [{ token_id: r.id, name: r.name, role: r.role, created_at: r.created_at, expires_at: r.expires_at, revoked_at: r.revoked_at }] : []));
}

/** One operator token's summary, or CP_TOKEN_NOT_FOUND. */
export async function operatorToken(store: Store, tokenId: string): Promise<TokenSummary> {
  const found = (await listOperatorTokens(store)).find((t) => t.token_id === tokenId);
  if (!found) throw new OrchestratorError("CP_TOKEN_NOT_FOUND", `no operator token ${tokenId} (list them with \`autonomy token list\`)`);
  return found;
}

/** Revokes every live credential of a node (DELETE /v1/nodes/:node_id/credential); NODE_NOT_FOUND for an unknown node. */
export async function revokeNodeCredentials(store: Store, clock: Clock, nodeId: string): Promise<number> {
  const node = await store.db.selectFrom("nodes").select("node_id").where("node_id", "=", nodeId).executeTakeFirst();
  if (!node) throw new OrchestratorError("NODE_NOT_FOUND", `node ${nodeId} is not enrolled on this control plane`);
  const r = await store.db.updateTable("node_credentials").set({ revoked_at: iso(clock.now()) }).where("node_id", "=", nodeId).where("revoked_at", "is", null).executeTakeFirst();
  return Number(r.numUpdatedRows);
}

export interface IssuedEnrollmentToken {
  token: string;
  node_id: string | null;
  expires_at: string;
}

export async function createEnrollmentToken(store: Store, clock: Clock, req: { node_id?: string | undefined; labels?: Labels | undefined; ttl_seconds: number }, createdBy: string): Promise<IssuedEnrollmentToken> {
  const s = newSecret("aoe");
  const now = clock.now();
  const expires_at = iso(now + req.ttl_seconds * 1000);
  await store.db
    .insertInto("enrollment_tokens")
    .values({ id: s.id, hash: s.hash, node_id: req.node_id ?? null, labels: JSON.stringify(req.labels ?? {}), created_at: iso(now), expires_at, created_by: createdBy, used_at: null, used_by: null })
    .execute();
  return { token: s.token, node_id: req.node_id ?? null, expires_at };
}

/**
 * A node may not choose its own labels (rollouts select nodes by them): it may
 * only repeat what the operator pinned in the enrollment token. Anything else
 * is a 400 naming the label, before the token is spent.
 */
function checkProposedLabels(pinned: Labels, proposed: Labels | undefined): void {
  for (const [key, value] of Object.entries(proposed ?? {})) {
    if (pinned[key] !== value) {
      throw new OrchestratorError("ENROLLMENT_LABELS_REFUSED", `labels.${key}: a node may not set its own labels; only the labels pinned in the enrollment token apply (${key} is ${pinned[key] === undefined ? "not pinned" : `pinned to ${JSON.stringify(pinned[key])}`})`);
    }
  }
}

const invalidEnrollment = (): OrchestratorError => new OrchestratorError("ENROLLMENT_TOKEN_INVALID", "the enrollment token is unknown, expired or already used");

/**
 * Spends an enrollment token and enrolls `nodeId`, all in one transaction:
 * the token is marked used only if it is still unused and unexpired (one
 * conditional UPDATE: of two concurrent uses exactly one changes the row), then
 * the node row and its credential are inserted. Any failure rolls the whole
 * thing back, the token included. Returns the node credential (shown once).
 */
export async function enrollNode(store: Store, clock: Clock, enrollmentToken: string | undefined, req: { node_id: string; labels?: Labels | undefined }): Promise<{ node_id: string; credential: string }> {
  const parsed = enrollmentToken === undefined ? undefined : parseSecret(enrollmentToken);
  if (!parsed || parsed.kind !== "aoe" || enrollmentToken === undefined) throw invalidEnrollment();
  const hash = hashToken(enrollmentToken);
  const now = iso(clock.now());
  return withWriteTransaction(store, async (tx) => {
    const row = await tx.selectFrom("enrollment_tokens").selectAll().where("id", "=", parsed.id).executeTakeFirst();
    // The secret is checked (constant time) BEFORE anything about the token is revealed: a known token id
    // with a wrong secret learns nothing, not even the node id it is pinned to.
    if (!row || !safeEqual(hash, row.hash)) throw invalidEnrollment();
    if (row.node_id !== null && row.node_id !== req.node_id) {
      throw new OrchestratorError("ENROLLMENT_NODE_MISMATCH", `this enrollment token is for node ${row.node_id}, not ${req.node_id}`);
    }
    const pinned = JSON.parse(row.labels) as Labels;
    checkProposedLabels(pinned, req.labels);
    const spent = await tx
      .updateTable("enrollment_tokens")
      .set({ used_at: now, used_by: req.node_id })
      .where("id", "=", parsed.id)
      .where("hash", "=", hash)
      .where("used_at", "is", null)
      .where("expires_at", ">", now)
      .executeTakeFirst();
    if (spent.numUpdatedRows !== 1n) throw invalidEnrollment();
    const exists = await tx.selectFrom("nodes").select("node_id").where("node_id", "=", req.node_id).executeTakeFirst();
    if (exists) throw new OrchestratorError("NODE_ALREADY_ENROLLED", `node ${req.node_id} is already enrolled`);
    try {
      // Only the operator's labels: selectors (rollout targets) must not be chosen by the node itself.
      await tx.insertInto("nodes").values({ node_id: req.node_id, labels: JSON.stringify(pinned), enrolled_at: now }).execute();
    } catch (e) {
      // Two enrollments of one id with two tokens at once: the primary key decides; the loser's token stays unspent.
      if (isUniqueViolation(e)) throw new OrchestratorError("NODE_ALREADY_ENROLLED", `node ${req.node_id} is already enrolled`);
      throw e;
    }
    const cred = newSecret("aon");
    await tx.insertInto("node_credentials").values({ id: cred.id, node_id: req.node_id, hash: cred.hash, created_at: now, revoked_at: null }).execute();
    return { node_id: req.node_id, credential: cred.token };
  });
}
