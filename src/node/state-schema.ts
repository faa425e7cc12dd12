import { z } from "zod";
import { policySlotSchema } from "../policy/index.js";

const digest = z.string().regex(/^sha256:[a-f0-9]{64}$/);
const hex64 = z.string().regex(/^[a-f0-9]{64}$/);
const sequence = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
const time = z.string().min(1);

/** Equivocations and key rotations kept for the operator: the newest few, so the file stays small. */
export const MAX_EQUIVOCATIONS = 16;
export const MAX_KEY_ROTATIONS = 16;
/**
 * Bound on the key ids the node remembers having trusted (only `runtime trust
 * set` adds to it, at most 32 per call): past it the operator is told, never
 * is an old id forgotten (forgetting one would make its statements replayable).
 */
export const MAX_TRUSTED_KEY_IDS_EVER = 4096;

/**
 * What `runtime activate` committed: the release statement that was accepted
 * (its digest identifies the exact signed bytes) and what it binds.
 */
const activationSchema = z.strictObject({
  ref: z.string().min(1),
  statement_digest: digest,
  sequence,
  channel: z.string().min(1),
  repository: z.string().min(1),
  issued_at: time,
  expires_at: time,
  image_digest: digest,
  lock_digest: digest,
  lock_fingerprint: z.string().regex(/^blake3:[a-f0-9]{64}$/),
  policy_digest: digest,
  policy_name: z.string().min(1),
  policy_version: z.string().min(1),
  /** The trusted keys whose signatures counted toward the threshold. */
  key_ids: z.array(hex64),
  activated_at: time,
});

/** Two different signed statements offered under one sequence: refused, and kept here for the operator. */
const equivocationSchema = z.strictObject({
  sequence,
  /** The statement (or, for a release activated before statements, the image) recorded at that sequence. */
  recorded: digest,
  offered: digest,
  at: time,
});

/** A change of the trusted key set (`runtime trust set`), and whether the sequence floor was reset with it. */
const keyRotationSchema = z.strictObject({
  at: time,
  /** Key ids (SHA-256 of the SPKI DER) trusted before and after. */
  from: z.array(hex64),
  to: z.array(hex64),
  floor_reset: z.boolean(),
  previous_sequence: z.number().int().nonnegative(),
});

/**
 * The floor that held under a key set when a rotation reset it: restored (if
 * higher) when any of those keys is trusted again, so A → B → A with no B
 * release in between still refuses A's old statements.
 */
const retiredFloorSchema = z.strictObject({
  key_ids: z.array(hex64).min(1),
  highest_sequence: z.number().int().nonnegative(),
  highest_statement_digest: digest.optional(),
  newest_issued_at: time.optional(),
  legacy_highest_artifact_digest: digest.optional(),
});

/** The version-1 activation record, kept verbatim after migration so the operator still sees it. */
const legacyActivationSchema = z.object({
  ref: z.string(),
  artifact_digest: digest,
  lock_fingerprint: z.string(),
  policy_digest: digest,
  sequence: z.number().int().positive(),
  rollback: z.boolean(),
  signed_at: z.string(),
  activated_at: z.string(),
});

export const stateSchema = z.strictObject({
  version: z.literal(2),
  /** Increments on every commit, so watchers notice a change cheaply. */
  generation: z.number().int().nonnegative(),
  current: policySlotSchema.optional(),
  lkg: policySlotSchema.optional(),
  activation: activationSchema.optional(),
  /**
   * The rollback floor (TUF's trusted version): the highest sequence accepted,
   * the statement accepted at it, and the newest `issued_at` accepted. All
   * three change only in the same atomic commit as the activation.
   */
  highest_sequence: z.number().int().nonnegative(),
  highest_statement_digest: digest.optional(),
  newest_issued_at: time.optional(),
  /** Migrated from version 1: the image activated at `highest_sequence` before statements existed. */
  legacy_highest_artifact_digest: digest.optional(),
  legacy_activation: legacyActivationSchema.optional(),
  /** The trusted key ids the floor was established under (see `runtime trust set`). */
  trust_key_ids: z.array(hex64).optional(),
  /** Every key id this node has trusted, ever: a rotation resets the floor only to a set with none of them. */
  trusted_key_ids_ever: z.array(hex64).max(MAX_TRUSTED_KEY_IDS_EVER).optional(),
  /** Floors reset by rotations, by the key set they held under (absent in older states: the current floor is kept). */
  retired_floors: z.array(retiredFloorSchema).max(MAX_TRUSTED_KEY_IDS_EVER).optional(),
  equivocations: z.array(equivocationSchema).max(MAX_EQUIVOCATIONS),
  key_rotations: z.array(keyRotationSchema).max(MAX_KEY_ROTATIONS),
});

export type ActivationRecord = z.infer<typeof activationSchema>;
export type EquivocationRecord = z.infer<typeof equivocationSchema>;
export type KeyRotationRecord = z.infer<typeof keyRotationSchema>;
export type RetiredFloor = z.infer<typeof retiredFloorSchema>;
export type NodeState = z.infer<typeof stateSchema>;

export const EMPTY_STATE: NodeState = Object.freeze({ version: 2, generation: 0, highest_sequence: 0, equivocations: [], key_rotations: [] });

/**
 * Version 1 (before release statements) → version 2, explicitly: the sequence
 * floor is kept (a node that ran sequence 3 still refuses 1), the image
 * recorded at that sequence is kept so the same release re-published as a
 * statement is accepted at that sequence and anything else is equivocation,
 * and the old activation record is kept verbatim for the operator. Its
 * `signed_at` is NOT used as an `issued_at` floor: it was a signature time,
 * not a statement's. Anything else is returned as is for the schema to judge.
 */
export function migrateState(doc: unknown): unknown {
  if (typeof doc !== "object" || doc === null || (doc as { version?: unknown }).version !== 1) return doc;
  const { version: _v, activation, highest_artifact_digest, ...rest } = doc as Record<string, unknown>;
  return {
    ...rest,
    version: 2,
    ...(highest_artifact_digest !== undefined ? { legacy_highest_artifact_digest: highest_artifact_digest } : {}),
    ...(activation !== undefined ? { legacy_activation: activation } : {}),
    equivocations: [],
    key_rotations: [],
  };
}
