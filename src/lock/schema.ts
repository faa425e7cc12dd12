import { z } from "zod";
import { isSha256Digest } from "../lib/index.js";

/** `blake3:` + 64 lowercase hex: the only accepted fingerprint form (no SHA-256 fallback). */
export const FINGERPRINT_RE = /^blake3:[a-f0-9]{64}$/;

/** Input hashes may be either algorithm, always lowercase 64 hex. */
const INPUT_HASH_RE = /^(sha256|blake3):[a-f0-9]{64}$/;

/** A lone surrogate cannot be encoded as UTF-8, so RFC 8785 refuses it; refuse it at the door instead. */
const LONE_SURROGATE_RE = /\p{Cs}/u;

const ref = z
  .string({ error: "must be a string" })
  .min(1, { error: "must not be empty" })
  .refine((s) => !LONE_SURROGATE_RE.test(s), { error: "must be well-formed Unicode" });

const sha256Digest = z
  .string({ error: "must be a string" })
  .refine(isSha256Digest, { error: "must be sha256:<64 lowercase hex>" });

const inputHash = z
  .string({ error: "must be a string" })
  .regex(INPUT_HASH_RE, { error: "must be sha256:<64 lowercase hex> or blake3:<64 lowercase hex>" });

const artifact = z.strictObject({ ref, digest: sha256Digest }, { error: "must be an object" });

/**
 * The `autonomy.lock.json` schema. Objects are strict: an unknown field is an
 * error, because a field the verifier ignores is a field an attacker can use.
 */
export const activationLockSchema = z.strictObject(
  {
    schema_version: z.literal("v0", { error: 'must be "v0"' }),
    agent_artifact: artifact,
    policy_bundle: artifact,
    inputs: z.strictObject(
      { prompt_hash: inputHash.optional(), tool_inputs_hash: inputHash.optional() },
      { error: "must be an object" },
    ),
    behavioral_fingerprint: z
      .string({ error: "must be a string" })
      .regex(FINGERPRINT_RE, { error: "must be blake3:<64 lowercase hex>" }),
  },
  { error: "must be an object" },
);

/** A validated activation lock: what an agent release is pinned to. */
export type ActivationLock = z.infer<typeof activationLockSchema>;

/** The lock's content without its fingerprint: exactly what the fingerprint covers. */
export type LockContent = Omit<ActivationLock, "behavioral_fingerprint">;
