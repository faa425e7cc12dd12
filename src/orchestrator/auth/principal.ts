import { NODE_PERMISSIONS, ROLES, ROLE_PERMISSIONS } from "../../cpapi/index.js";
import type { Permission, Role } from "../../cpapi/index.js";
import { isoTime, safeEqual } from "../../lib/index.js";
import type { Clock } from "../../lib/index.js";
import type { Principal } from "../area.js";
import type { Store } from "../db/connect.js";
import { OrchestratorError } from "../errors.js";
import { hashToken, parseSecret } from "./secrets.js";

const isRole = (r: string): r is Role => (ROLES as readonly string[]).includes(r);

/**
 * The principal a bearer string stands for: an operator token (not revoked,
 * not expired) or a node credential. Anything else — malformed, unknown, an
 * enrollment token (it authenticates only the enroll route) — is a 401.
 */
export async function authenticate(store: Store, clock: Clock, token: string): Promise<Principal> {
  const parsed = parseSecret(token);
  const hash = hashToken(token);
  if (parsed?.kind === "aop") {
    const row = await store.db.selectFrom("tokens").select(["id", "name", "role", "hash", "expires_at", "revoked_at"]).where("id", "=", parsed.id).executeTakeFirst();
    if (!row || !safeEqual(hash, row.hash) || !isRole(row.role)) throw invalid();
    if (row.revoked_at !== null) throw new OrchestratorError("TOKEN_REVOKED", `token ${row.id} (${row.name}) was revoked at ${row.revoked_at}`);
    if (row.expires_at !== null && row.expires_at <= isoTime(clock)) throw new OrchestratorError("TOKEN_EXPIRED", `token ${row.id} (${row.name}) expired at ${row.expires_at}`);
    return { kind: "operator", token_id: row.id, name: row.name, role: row.role };
  }
  if (parsed?.kind === "aon") {
    const row = await store.db.selectFrom("node_credentials").select(["node_id", "hash", "revoked_at"]).where("id", "=", parsed.id).executeTakeFirst();
    if (!row || !safeEqual(hash, row.hash)) throw invalid();
    if (row.revoked_at !== null) throw new OrchestratorError("TOKEN_REVOKED", `the credential of node ${row.node_id} was revoked at ${row.revoked_at}`);
    return { kind: "node", node_id: row.node_id };
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
