import { z } from "zod";
import { Channel, Cursor, Labels, LockFingerprint, ReleaseId, Sha256Digest, Timestamp } from "./common.js";

/**
 * A release on the control plane is ADVISORY: the signed release statement
 * (a DSSE envelope, docs/formats.md) plus where to fetch the image. The
 * server reads the statement's predicate to index it (channel, sequence,
 * digests) but never vouches for it; a node verifies the statement, lock and
 * bundle itself before activating anything.
 */

/** A DSSE envelope as JSON (payload base64, signatures[]); the server checks its shape, not its signatures. */
export const Envelope = z.looseObject({
  payloadType: z.string().max(256),
  payload: z.string().max(64 * 1024 * 2),
  signatures: z.array(z.looseObject({ keyid: z.string().max(256).optional(), sig: z.string().max(1024) })).min(1).max(32),
});
export type Envelope = z.infer<typeof Envelope>;

/** POST /v1/releases (release:publish). */
export const PublishReleaseRequest = z.strictObject({
  statement: Envelope,
  /** Where nodes pull the image: a registry reference or oci:<dir>:<tag>; its digest must be the statement's subject. */
  image: z.string().min(1).max(1024),
  /** Must equal the statement's channel (a mismatch is a 400, not a silent re-channel). */
  channel: Channel,
  notes: z.string().max(4096).default(""),
  /**
   * A standby release: stored, listed and conflict-checked like any other, but never answered as the channel's
   * `latest` (to operators or unassigned nodes). It is a rollout's rollback target (docs/rollouts.md): the
   * previous content re-signed above the plan's release, reaching nodes only through rollback assignments.
   */
  standby: z.boolean().default(false),
});
export type PublishReleaseRequest = z.infer<typeof PublishReleaseRequest>;

export const Release = z.looseObject({
  release_id: ReleaseId,
  channel: Channel,
  sequence: z.number().int().nonnegative(),
  image: z.string(),
  /** The statement's subject: the image manifest digest. */
  image_digest: Sha256Digest,
  repository: z.string(),
  lock_digest: Sha256Digest,
  lock_fingerprint: LockFingerprint,
  bundle_digest: Sha256Digest,
  statement: Envelope,
  notes: z.string(),
  issued_at: Timestamp,
  expires_at: Timestamp,
  published_at: Timestamp,
  /** The token name that published it (audit hook). */
  published_by: z.string(),
  /** When an owner withdrew it (POST /v1/releases/{id}/withdraw): latest skips it; null while live. */
  withdrawn_at: Timestamp.nullable().optional(),
  /** Published with `standby: true`: never the channel's latest, a rollback target only (absent from older servers: false). */
  standby: z.boolean().default(false),
});
export type Release = z.infer<typeof Release>;

/** GET /v1/releases?channel=&cursor=&limit= : newest sequence first. */
export const ReleasePage = z.looseObject({ releases: z.array(Release), next_cursor: Cursor.nullable() });
export type ReleasePage = z.infer<typeof ReleasePage>;

/** GET /v1/releases/latest?channel=stable → 200 Release with ETag `"<release_id>"`; If-None-Match → 304; none → 404 RELEASE_NOT_FOUND. */
export const LatestQuery = z.strictObject({ channel: Channel.default("stable") });

export { Labels };
