import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { createBLAKE3 } from "hash-wasm";
import { UsageError, errnoCode, safeEqual } from "../lib/index.js";
import { LockError } from "./errors.js";
import { canonicalJson, computeFingerprint } from "./fingerprint.js";
import type { ActivationLock } from "./schema.js";
import { toActivationLock, toLockContent } from "./validate.js";

/** What {@link createLock} needs: the two artifacts the release is pinned to, and optional input hashes. */
export interface CreateLockOptions {
  agentImageRef: string;
  agentDigest: string;
  policyBundleRef: string;
  policyBundleDigest: string;
  promptHash?: string;
  toolInputsHash?: string;
}

/**
 * Builds a validated, fingerprinted `v0` activation lock.
 *
 * ### Examples
 * ```ts
 * const lock = await createLock({ agentImageRef: "reg/agent:1.0", agentDigest, policyBundleRef: "reg/policy:1.0", policyBundleDigest })
 * await writeFileAtomic("autonomy.lock.json", serializeLock(lock))
 * ```
 */
export async function createLock(opts: CreateLockOptions): Promise<ActivationLock> {
  const content = toLockContent({
    schema_version: "v0",
    agent_artifact: { ref: opts.agentImageRef, digest: opts.agentDigest },
    policy_bundle: { ref: opts.policyBundleRef, digest: opts.policyBundleDigest },
    // Absent, not undefined: an optional hash that was not given is not part of the lock.
    inputs: {
      ...(opts.promptHash === undefined ? {} : { prompt_hash: opts.promptHash }),
      ...(opts.toolInputsHash === undefined ? {} : { tool_inputs_hash: opts.toolInputsHash }),
    },
  });
  return { ...content, behavioral_fingerprint: await computeFingerprint(content) };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decode(input: Uint8Array | string): string {
  if (typeof input === "string") return input;
  try {
    return utf8.decode(input);
  } catch (e) {
    throw new LockError("LOCK_PARSE_FAILED", "The lock is not valid UTF-8.", { cause: e });
  }
}

/**
 * Parses and validates `autonomy.lock.json` content. Throws only
 * {@link LockError}: `LOCK_PARSE_FAILED`, `LOCK_SCHEMA_INVALID` or
 * `LOCK_FINGERPRINT_FORMAT`. Does not check the fingerprint; see {@link verifyLock}.
 *
 * ### Examples
 * ```ts
 * const lock = parseLock(await readFile("autonomy.lock.json"))
 * ```
 */
export function parseLock(input: Uint8Array | string): ActivationLock {
  let value: unknown;
  try {
    value = JSON.parse(decode(input));
  } catch (e) {
    if (e instanceof LockError) throw e;
    throw new LockError("LOCK_PARSE_FAILED", "The lock is not valid JSON.", { cause: e });
  }
  return toActivationLock(value);
}

/**
 * Checks that the lock is well formed and that its `behavioral_fingerprint`
 * matches the recomputed one (constant-time comparison). Throws
 * `LOCK_FINGERPRINT_MISMATCH` (exit 4) with `details.expected` = the recorded
 * value and `details.actual` = the recomputed value.
 *
 * ### Examples
 * ```ts
 * await verifyLock(parseLock(bytes))
 * ```
 */
export async function verifyLock(lock: ActivationLock): Promise<void> {
  // Re-validate: callers may hand us an object that never went through parseLock.
  const checked = toActivationLock(lock);
  const actual = await computeFingerprint(checked);
  if (!safeEqual(checked.behavioral_fingerprint, actual)) {
    throw new LockError("LOCK_FINGERPRINT_MISMATCH", "The lock's behavioral_fingerprint does not match its content.", {
      details: { expected: checked.behavioral_fingerprint, actual },
    });
  }
}

/**
 * The lock as it is written to disk: 2-space indented JSON with keys in
 * RFC 8785 order and a trailing newline, so files diff cleanly and the same
 * lock always produces the same bytes.
 */
export function serializeLock(lock: ActivationLock): string {
  // JSON.parse keeps the canonical key order (lock keys are never integer-like).
  return `${JSON.stringify(JSON.parse(canonicalJson(lock)), null, 2)}\n`;
}

/** Hash algorithms accepted for lock inputs. */
export type InputHashAlgorithm = "blake3" | "sha256";

interface Hasher {
  update(chunk: Buffer): void;
  hex(): string;
}

async function newHasher(algo: InputHashAlgorithm): Promise<Hasher> {
  // The type says it all for TS callers; JS callers (and CLI strings) get a usage error, not a silent BLAKE3.
  if (algo !== "sha256" && algo !== "blake3") {
    throw new UsageError(`Unknown hash algorithm ${JSON.stringify(algo)}.`, "Use blake3 (default) or sha256.");
  }
  if (algo === "sha256") {
    const h = createHash("sha256");
    return { update: (c) => void h.update(c), hex: () => h.digest("hex") };
  }
  const h = await createBLAKE3(256);
  h.init();
  return { update: (c) => void h.update(c), hex: () => h.digest("hex") };
}

/**
 * Streams a file through BLAKE3-256 (default) or SHA-256 and returns
 * `<algo>:<hex>`, the form `inputs.prompt_hash` / `inputs.tool_inputs_hash` take.
 * Throws `LOCK_INPUT_UNREADABLE` when the file cannot be read.
 *
 * ### Examples
 * ```ts
 * const promptHash = await hashInputFile("prompt.txt") // "blake3:…"
 * ```
 */
export async function hashInputFile(path: string, algo: InputHashAlgorithm = "blake3"): Promise<string> {
  const hasher = await newHasher(algo);
  try {
    for await (const chunk of createReadStream(path)) hasher.update(chunk as Buffer);
  } catch (e) {
    throw new LockError("LOCK_INPUT_UNREADABLE", `Cannot read input file ${path} (${errnoCode(e) ?? "read error"}).`, {
      cause: e,
      details: { path },
    });
  }
  return `${algo}:${hasher.hex()}`;
}
