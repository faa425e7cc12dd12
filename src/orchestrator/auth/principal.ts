import { NODE_PERMISSIONS, ROLES, ROLE_PERMISSIONS } from "../../cpapi/index.js";
import type { Permission, Role } from "../../cpapi/index.js";
import { isoTime, safeEqual } from "../../lib/index.js";
import type { Clock } from "../../lib/index.js";
import type { Principal } from "../area.js";
import type { Store } from "../db/connect.js";
import { OrchestratorError } from "../errors.js";
import { hashToken, parseSecret } from "./secrets.js";

const isRole = (r: string): r is Role => (ROLES as readonly string[]).includes(r);

/** A principal found in the store, with its token's expiry (ms; Infinity when none). */
export interface Authenticated {
  principal: Principal;
  expiresAt: number;
}

/**
 * The principal a bearer string stands for: an operator token (not revoked,
 * not expired) or a node credential. Anything else — malformed, unknown, an
 * enrollment token (it authenticates only the enroll route) — is a 401.
 */
export async function authenticate(store: Store, clock: Clock, token: string): Promise<Principal> {
  const a = await lookupToken(store, token, hashToken(token));
  checkExpiry(a, clock);
  return a.principal;
}

/** Throws TOKEN_EXPIRED when the token's lifetime is over at the clock's now. */
export function checkExpiry(a: Authenticated, clock: Clock): void {
  if (clock.now() >= a.expiresAt) {
    const who = a.principal.kind === "operator" ? `token ${a.principal.token_id} (${a.principal.name})` : `node ${a.principal.node_id}`;
    throw new OrchestratorError("TOKEN_EXPIRED", `${who} expired at ${isoTime({ now: () => a.expiresAt })}`);
  }
}

/** Finds the token's row by id and compares its SHA-256 in constant time; revoked → 401 TOKEN_REVOKED. Expiry is the caller's (checkExpiry). */
export async function lookupToken(store: Store, token: string, hash: string): Promise<Authenticated> {
  const parsed = parseSecret(token);
  if (parsed?.kind === "aop") {
    const row = await store.db.selectFrom("tokens").select(["id", "name", "role", "hash", "expires_at", "revoked_at"]).where("id", "=", parsed.id).executeTakeFirst();
    if (!row || !safeEqual(hash, row.hash) || !isRole(row.role)) throw invalid();
    if (row.revoked_at !== null) throw new OrchestratorError("TOKEN_REVOKED", `token ${row.id} (${row.name}) was revoked at ${row.revoked_at}`);
    return { principal: { kind: "operator", token_id: row.id, name: row.name, role: row.role }, expiresAt: row.expires_at === null ? Infinity : Date.parse(row.expires_at) };
  }
  if (parsed?.kind === "aon") {
    const row = await store.db.selectFrom("node_credentials").select(["node_id", "hash", "revoked_at"]).where("id", "=", parsed.id).executeTakeFirst();
    if (!row || !safeEqual(hash, row.hash)) throw invalid();
    if (row.revoked_at !== null) throw new OrchestratorError("TOKEN_REVOKED", `the credential of node ${row.node_id} was revoked at ${row.revoked_at}`);
    return { principal: { kind: "node", node_id: row.node_id }, expiresAt: Infinity };
  }
  throw invalid();
}

function invalid(): OrchestratorError {
  return new OrchestratorError("TOKEN_INVALID", "the bearer token is not one this control plane issued (or it is an enrollment token, which only POST /v1/nodes/enroll takes)");
}

/** The permissions a principal holds. */
export function permissionsOf(p: Principal): readonly Permission[] {
  return p.kind === "node" ? NODE_PERMISSIONS : ROLE_PERMISSIONS[p.role];
}

/** A short name of the principal for errors and audit fields (never a secret). */
export function principalName(p: Principal): string {
  return p.kind === "node" ? `node ${p.node_id}` : `token ${p.token_id} (${p.name}, ${p.role})`;
}
