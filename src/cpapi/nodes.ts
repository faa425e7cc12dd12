import { z } from "zod";
import { Cursor, Labels, LockFingerprint, NodeId, PlainText, ReleaseId, Timestamp } from "./common.js";

/** The phases of `ai.deployment.lifecycle` (the poller emits each into the WAL and acks it). */
export const LIFECYCLE_PHASES = [
  "polled",
  "candidate_detected",
  "verify_started",
  "verify_passed",
  "verify_failed",
  "activation_started",
  "activated",
  "activate_failed",
] as const;
export type LifecyclePhase = (typeof LIFECYCLE_PHASES)[number];

/** The event_type of lifecycle events. */
export const LIFECYCLE_EVENT_TYPE = "ai.deployment.lifecycle";

/** POST /v1/nodes/{node_id}/heartbeat (node:report, only as itself). */
export const HeartbeatRequest = z.strictObject({
  /** The release of the current activation, when it came from this control plane; null when none or unknown. */
  release_id: ReleaseId.nullable(),
  /** The activated statement's sequence and lock fingerprint (null before the first activation). */
  activation_sequence: z.number().int().nonnegative().nullable(),
  lock_fingerprint: LockFingerprint.nullable(),
  /** Monotonic boot epoch of the node's state root. */
  boot_epoch: z.number().int().nonnegative(),
  /** The WAL generation id (docs/wal.md), so the CP can tell a reset WAL. */
  wal_generation: PlainText.max(128).nullable(),
  runtime_version: PlainText.max(64),
});
export type HeartbeatRequest = z.infer<typeof HeartbeatRequest>;

/** POST /v1/nodes/{node_id}/ack (node:report): the node's progress on one release. */
export const AckRequest = z.strictObject({
  release_id: ReleaseId,
  phase: z.enum(LIFECYCLE_PHASES),
  lock_fingerprint: LockFingerprint.nullable().default(null),
  /** Why, for the failures (verify_failed, activate_failed): the error code and one line. */
  detail: z.string().max(1024).default(""),
  at: Timestamp,
});
export type AckRequest = z.infer<typeof AckRequest>;

export const Node = z.looseObject({
  node_id: NodeId,
  labels: Labels,
  release_id: ReleaseId.nullable(),
  activation_sequence: z.number().int().nullable(),
  lock_fingerprint: LockFingerprint.nullable(),
  boot_epoch: z.number().int().nullable(),
  wal_generation: z.string().nullable(),
  runtime_version: z.string().nullable(),
  enrolled_at: Timestamp,
  last_seen: Timestamp.nullable(),
  /** The node's latest ack: which release, which phase, when. */
  last_ack: z.looseObject({ release_id: ReleaseId, phase: z.enum(LIFECYCLE_PHASES), detail: z.string(), at: Timestamp }).nullable(),
});
export type Node = z.infer<typeof Node>;

/** GET /v1/nodes?label=k=v&cursor=&limit= (fleet:read). */
export const NodePage = z.looseObject({ nodes: z.array(Node), next_cursor: Cursor.nullable() });
export type NodePage = z.infer<typeof NodePage>;
