/**
 * `manifest.json`: the schema, its canonical serialization (what the builder
 * writes) and the strict parse (the only form the reader accepts).
 */
import semver from "semver";
import { z } from "zod";
import { fieldProblems, formatProblems, isSha256Digest, printable } from "../../lib/index.js";
import { PolicyError, messageOf } from "../errors.js";
import type { BundleManifest } from "../types.js";
import { decodeUtf8 } from "./decode-utf8.js";
import { DEFAULT_BUNDLE_LIMITS } from "./limits.js";
import { BUNDLE_NAME_RE, POLICY_FILE_RE, compareNames } from "./names.js";

/** Longest version / range string accepted (semver's own limit). */
const MAX_VERSION_CHARS = 256;

const RFC3339_UTC_SECONDS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

/** True for `YYYY-MM-DDTHH:MM:SSZ` naming a real instant (no fractions, no offsets, no leap seconds). */
export function isRfc3339UtcSeconds(s: string): boolean {
  if (!RFC3339_UTC_SECONDS_RE.test(s)) return false;
  const d = new Date(s);
  return !Number.isNaN(d.getTime()) && d.toISOString() === s.replace("Z", ".000Z");
}

/** True for `""` (any runtime) or a semver range (`>=0.1.0 <1.0.0`, `^1.2.0`) without surrounding blanks. */
export function isRuntimeRange(s: string): boolean {
  if (s === "") return true;
  return s.length <= MAX_VERSION_CHARS && s.trim() === s && semver.validRange(s) !== null;
}

/** True for a strict semantic version exactly as written (`1.2.3`, not `v1.2.3` or `=1.2.3`). */
export function isStrictSemver(s: string): boolean {
  return s.length <= MAX_VERSION_CHARS && semver.valid(s) === s;
}

const str = (): z.ZodString => z.string({ error: "must be a string" });

/**
 * `manifest.json`. Strict: an unknown field is an error, because a field the
 * reader ignores is a field an attacker can use.
 */
export const bundleManifestSchema = z.strictObject(
  {
    name: str().regex(BUNDLE_NAME_RE, { error: "must be 1-128 characters (letters, digits, '.', '_', '-'), starting with a letter or digit" }),
    policy_bundle_version: str().refine(isStrictSemver, { error: "must be a semantic version such as 1.2.3" }),
    required_runtime_version: str().refine(isRuntimeRange, { error: 'must be a semver range such as ">=0.1.0 <1.0.0", or "" for any runtime' }),
    bundle_hash: str().refine(isSha256Digest, { error: "must be sha256:<64 lowercase hex>" }),
    created_at: str().refine(isRfc3339UtcSeconds, { error: "must be RFC 3339 UTC to the second, e.g. 2024-01-31T12:00:00Z" }),
    engine: z.literal("cedar", { error: 'must be "cedar"' }),
    files: z
      .record(
        str().regex(POLICY_FILE_RE, { error: "is not a policy file name" }),
        str().refine(isSha256Digest, { error: "must be sha256:<64 lowercase hex>" }),
        {
          error: (iss) =>
            iss.code === "invalid_key" ? "is not a policy file name (letters, digits, '.', '_', '-', ending in .cedar)" : "must be an object",
        },
      )
      .refine((f) => Object.keys(f).length > 0, { error: "must list at least one policy file" })
      .refine((f) => Object.keys(f).length < DEFAULT_BUNDLE_LIMITS.maxEntries, { error: `must list fewer than ${DEFAULT_BUNDLE_LIMITS.maxEntries} files` }),
  },
  { error: "must be an object" },
);

/**
 * The canonical `manifest.json` bytes: keys in the order of {@link BundleManifest},
 * `files` sorted byte-wise by name, two-space indentation, trailing newline.
 * (No file name is an array index, so JavaScript keeps the insertion order.)
 * The builder writes exactly this and the reader accepts nothing else, so a
 * manifest cannot carry duplicate keys, reordered keys or padding that another
 * JSON parser might read differently.
 */
export function serializeManifest(m: BundleManifest): string {
  const files: Record<string, string> = {};
  for (const name of Object.keys(m.files).sort(compareNames)) files[name] = m.files[name]!;
  const doc = {
    name: m.name,
    policy_bundle_version: m.policy_bundle_version,
    required_runtime_version: m.required_runtime_version,
    bundle_hash: m.bundle_hash,
    created_at: m.created_at,
    engine: m.engine,
    files,
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/**
 * Step 4 of reading a bundle. Parses and validates manifest.json (`data`: the
 * entry's bytes, undefined when the archive has none), collecting every bad
 * field, and requires its canonical form.
 */
export function parseManifest(data: Uint8Array | undefined): BundleManifest {
  if (data === undefined) throw new PolicyError("BUNDLE_MANIFEST_INVALID", "the archive has no manifest.json");
  const text = decodeUtf8(data);
  if (text === undefined) throw new PolicyError("BUNDLE_MANIFEST_INVALID", "manifest.json is not UTF-8 text");
  let value: unknown;
  let protoKey = false;
  try {
    value = JSON.parse(text, (key, v: unknown) => {
      if (key === "__proto__") protoKey = true;
      return v;
    });
  } catch (e) {
    throw new PolicyError("BUNDLE_MANIFEST_INVALID", `manifest.json is not JSON: ${printable(messageOf(e))}`, { cause: e });
  }
  if (protoKey) throw new PolicyError("BUNDLE_MANIFEST_INVALID", 'manifest.json has a "__proto__" key', { details: { fields: ["__proto__"] } });
  const r = bundleManifestSchema.safeParse(value);
  if (!r.success) {
    const problems = fieldProblems(r.error.issues);
    const list = formatProblems(problems);
    throw new PolicyError("BUNDLE_MANIFEST_INVALID", `manifest.json has ${problems.length} invalid field(s): ${printable(list, 2000)}`, {
      details: { fields: problems.map((p) => p.field) },
    });
  }
  const d = r.data;
  const manifest: BundleManifest = {
    name: d.name,
    policy_bundle_version: d.policy_bundle_version,
    required_runtime_version: d.required_runtime_version,
    bundle_hash: d.bundle_hash,
    created_at: d.created_at,
    engine: d.engine,
    files: Object.fromEntries(Object.keys(d.files).sort(compareNames).map((k) => [k, d.files[k]!])),
  };
  if (serializeManifest(manifest) !== text) {
    throw new PolicyError("BUNDLE_MANIFEST_INVALID", "manifest.json is valid but not in the canonical form `policy build` writes (key order, spacing or duplicate keys differ)");
  }
  return manifest;
}
