import canonicalize from "canonicalize";
import { blake3 } from "hash-wasm";
import { LockError } from "./errors.js";
import type { LockContent } from "./schema.js";

/** Deep enough for any lock; a guard so hostile nesting fails with a coded error, not a stack overflow. */
const MAX_DEPTH = 64;
const LONE_SURROGATE_RE = /\p{Cs}/u;

function reject(path: string, what: string): never {
  throw new LockError("LOCK_NOT_CANONICALIZABLE", `Cannot canonicalise ${path}: ${what}.`, { details: { path } });
}

function isPlainObject(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * Checks that `v` is plain JSON data before canonicalize sees it: the library
 * would call `toJSON`, silently emit `undefined` for functions, and throw
 * untyped errors, none of which we want under a signature.
 */
function assertJsonData(v: unknown, path: string, depth: number, seen: Set<object>): void {
  if (v === null || typeof v === "boolean") return;
  if (typeof v === "string") {
    if (LONE_SURROGATE_RE.test(v)) reject(path, "string contains a lone surrogate");
    return;
  }
  if (typeof v === "number") {
    if (!Number.isFinite(v)) reject(path, `${String(v)} is not a finite number`);
    return;
  }
  if (typeof v !== "object") return reject(path, `${typeof v} is not JSON data`);
  if (depth >= MAX_DEPTH) reject(path, `nested deeper than ${MAX_DEPTH} levels`);
  if (seen.has(v)) reject(path, "circular reference");
  seen.add(v);
  if (Array.isArray(v)) {
    v.forEach((item, i) => {
      if (item === undefined) reject(`${path}[${i}]`, "undefined is not JSON data");
      assertJsonData(item, `${path}[${i}]`, depth + 1, seen);
    });
  } else {
    if (!isPlainObject(v)) reject(path, "only plain objects are JSON data");
    // An undefined property is absent, exactly as JSON.stringify treats it.
    for (const [k, item] of Object.entries(v)) {
      if (LONE_SURROGATE_RE.test(k)) reject(path, "a key contains a lone surrogate");
      if (item !== undefined) assertJsonData(item, `${path}.${k}`, depth + 1, seen);
    }
  }
  seen.delete(v);
}

/**
 * RFC 8785 (JCS) canonical JSON of `value`: sorted keys, no whitespace,
 * ECMAScript number formatting. Throws `LOCK_NOT_CANONICALIZABLE` for
 * anything that is not plain JSON data (NaN, Infinity, BigInt, functions,
 * class instances, lone surrogates, cycles).
 *
 * ### Examples
 * ```ts
 * canonicalJson({ b: 1, a: [true, null] }) // '{"a":[true,null],"b":1}'
 * ```
 */
export function canonicalJson(value: unknown): string {
  if (value === undefined) reject("$", "undefined is not JSON data");
  assertJsonData(value, "$", 0, new Set());
  const out = canonicalize(value);
  if (out === undefined) reject("$", "value has no JSON form");
  return out;
}

/**
 * The exact bytes (as a string) the fingerprint is computed over: the RFC 8785
 * canonical JSON of the lock without `behavioral_fingerprint`. Pipe it to
 * `b3sum` to check a fingerprint with an independent tool.
 *
 * ### Examples
 * ```ts
 * process.stdout.write(fingerprintPayload(lock)) // | b3sum --no-names
 * ```
 */
export function fingerprintPayload(lock: LockContent & { behavioral_fingerprint?: string }): string {
  const { behavioral_fingerprint: _ignored, ...content } = lock;
  return canonicalJson(content);
}

/**
 * `blake3:` + hex BLAKE3-256 of the UTF-8 {@link fingerprintPayload} of `lock`.
 * Any `behavioral_fingerprint` already on the lock is ignored.
 *
 * ### Examples
 * ```ts
 * const fp = await computeFingerprint(lock) // "blake3:5c1f…"
 * ```
 */
export async function computeFingerprint(lock: LockContent & { behavioral_fingerprint?: string }): Promise<string> {
  const hex = await blake3(Buffer.from(fingerprintPayload(lock), "utf8"), 256);
  return `blake3:${hex}`;
}
