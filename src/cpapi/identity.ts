import { z } from "zod";
import { Labels, NodeId, PlainText, Timestamp } from "./common.js";

/**
 * Who may call what. Every route declares ONE permission (routes.ts); a
 * principal is an operator token (with a role) or a node credential. Roles are
 * fixed sets of permissions for now; custom roles, mTLS identities and audit
 * plug into the same declaration later.
 */
export const PERMISSIONS = [
  "release:read",
  "release:publish",
  "fleet:read",
  "node:enroll",
  "node:report",
  "events:read",
  "events:write",
  "rollout:read",
  "rollout:manage",
  "token:manage",
  "public",
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** Operator roles. No role is named admin/root/system (the original's C-07). */
export const ROLES = ["owner", "publisher", "viewer"] as const;
export type Role = (typeof ROLES)[number];

/** What each operator role may do. `public` routes need no token at all. */
export const ROLE_PERMISSIONS: Readonly<Record<Role, readonly Permission[]>> = {
  owner: ["release:read", "release:publish", "fleet:read", "node:enroll", "events:read", "events:write", "rollout:read", "rollout:manage", "token:manage"],
  publisher: ["release:read", "release:publish", "fleet:read", "events:read", "rollout:read", "rollout:manage"],
  viewer: ["release:read", "fleet:read", "events:read", "rollout:read"],
};

/** What a node credential may do: read releases, report as itself (heartbeat, ack, its own events). */
export const NODE_PERMISSIONS: readonly Permission[] = ["release:read", "node:report", "events:write"];

/** POST /v1/tokens (token:manage): a new operator token. */
export const CreateTokenRequest = z.strictObject({
  role: z.enum(ROLES),
  /** Who or what the token is for; shown in lists, never secret. */
  name: PlainText.min(1).max(128),
  /** Lifetime in seconds; absent = does not expire. */
  ttl_seconds: z.number().int().min(60).max(10 * 366 * 86400).optional(),
});
export type CreateTokenRequest = z.infer<typeof CreateTokenRequest>;

/** The secret is in this answer only; the server keeps its SHA-256. */
export const CreatedToken = z.looseObject({
  token_id: z.string(),
  token: z.string(),
  role: z.enum(ROLES),
  name: z.string(),
  expires_at: Timestamp.nullable(),
});
export type CreatedToken = z.infer<typeof CreatedToken>;

/** POST /v1/enrollment-tokens (node:enroll): a single-use token one node enrolls with. */
export const CreateEnrollmentTokenRequest = z.strictObject({
  /** Pin the node id the token may enroll; absent = the node chooses. */
  node_id: NodeId.optional(),
  /** The enrolled node's labels: the ONLY labels it gets (a node cannot choose its own; selectors trust these). */
  labels: Labels.optional(),
  ttl_seconds: z.number().int().min(60).max(30 * 86400).default(86400),
});
export type CreateEnrollmentTokenRequest = z.infer<typeof CreateEnrollmentTokenRequest>;

export const CreatedEnrollmentToken = z.looseObject({
  token: z.string(),
  node_id: NodeId.nullable(),
  expires_at: Timestamp,
});
export type CreatedEnrollmentToken = z.infer<typeof CreatedEnrollmentToken>;

/** POST /v1/nodes/enroll, authenticated by the enrollment token (Bearer). Spent on success. */
export const EnrollRequest = z.strictObject({
  node_id: NodeId,
  /** Only labels equal to the token's pinned ones are accepted (400 ENROLLMENT_LABELS_REFUSED otherwise); kept for clients that echo them. */
  labels: Labels.optional(),
});
export type EnrollRequest = z.infer<typeof EnrollRequest>;

/** The node credential: a bearer token bound to `node_id`, shown once. */
export const Enrolled = z.looseObject({
  node_id: NodeId,
  credential: z.string(),
});
export type Enrolled = z.infer<typeof Enrolled>;

/** A token's id: the 16 hex digits between the kind and the secret (not secret itself). */
export const TokenId = z.string().regex(/^[0-9a-f]{16}$/, "a token id is 16 lowercase hex digits (the middle part of the token)");

/** An operator token as GET /v1/tokens lists it: never its secret or hash. */
export const TokenSummary = z.looseObject({
  token_id: z.string(),
  name: z.string(),
  role: z.enum(ROLES),
  created_at: Timestamp,
  expires_at: Timestamp.nullable(),
  revoked_at: Timestamp.nullable(),
});
export type TokenSummary = z.infer<typeof TokenSummary>;

/** GET /v1/tokens (token:manage): every operator token, oldest first. */
export const TokenList = z.looseObject({ tokens: z.array(TokenSummary) });
export type TokenList = z.infer<typeof TokenList>;

/** DELETE /v1/nodes/{node_id}/credential (token:manage): how many live credentials of the node were revoked. */
export const RevokedNodeCredential = z.looseObject({ node_id: NodeId, revoked: z.number().int() });
export type RevokedNodeCredential = z.infer<typeof RevokedNodeCredential>;
