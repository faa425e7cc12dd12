import { z } from "zod";
import { fieldProblems, isSha256Digest } from "../lib/index.js";
import { SignError } from "./errors.js";

/** The `critical.type` cosign writes and checks; anything else is not an image signature. */
export const COSIGN_SIGNATURE_TYPE = "cosign container image signature";

/** Where the signing time lives inside `optional`, so the signature covers it. */
export const SIGNED_AT_KEY = "autonomy.signed-at";

/** Options for {@link buildSimpleSigningPayload}. */
export interface BuildPayloadOptions {
  /** The repository the image is published under (cosign's `docker-reference`). */
  dockerReference: string;
  /** The signed manifest's digest, `sha256:<64 hex>`. */
  manifestDigest: string;
  signedAt: Date;
  /** More `optional` annotations; must not contain {@link SIGNED_AT_KEY}. */
  extra?: Readonly<Record<string, string>>;
}

/** A parsed, validated simple-signing payload. */
export interface SimpleSigningPayload {
  dockerReference: string;
  manifestDigest: string;
  /** The RFC 3339 signing time from `optional`, unvalidated (informational: release verification trusts only the statement); `undefined` when absent. */
  signedAt: string | undefined;
  /** Every `optional` annotation (own properties only, including {@link SIGNED_AT_KEY}). */
  optional: Readonly<Record<string, unknown>>;
}

function invalid(message: string, fields: string[] = []): SignError {
  return new SignError("PAYLOAD_INVALID", message, { details: { fields } });
}

/** RFC 3339, UTC, whole seconds: the form cosign tooling and humans both read. */
function rfc3339Seconds(d: Date): string {
  const t = d.getTime();
  // toISOString switches to 6-digit years outside 0000-9999, which RFC 3339 cannot express.
  if (!Number.isFinite(t) || d.getUTCFullYear() < 0 || d.getUTCFullYear() > 9999) {
    throw invalid("signedAt is not a valid date between years 0000 and 9999.", ["signedAt"]);
  }
  return `${d.toISOString().slice(0, 19)}Z`;
}

/**
 * The cosign "simple signing" payload for an image, as UTF-8 JSON bytes, with
 * the signing time in `optional` so the signature covers it.
 *
 * ### Examples
 * ```ts
 * const payload = buildSimpleSigningPayload({ dockerReference: "reg.example/agent", manifestDigest, signedAt: new Date() })
 * const sig = signPayload(privateKey, payload)
 * ```
 */
export function buildSimpleSigningPayload(opts: BuildPayloadOptions): Uint8Array {
  if (typeof opts.dockerReference !== "string" || opts.dockerReference.length === 0) {
    throw invalid("dockerReference must be a non-empty string.", ["dockerReference"]);
  }
  if (typeof opts.manifestDigest !== "string" || !isSha256Digest(opts.manifestDigest)) {
    throw invalid("manifestDigest must be sha256:<64 lowercase hex>.", ["manifestDigest"]);
  }
  const extra = opts.extra ?? {};
  if (Object.hasOwn(extra, SIGNED_AT_KEY)) throw invalid(`extra must not set ${SIGNED_AT_KEY}.`, ["extra"]);
  // Key order matches what cosign itself writes, so payloads look the same to a reader.
  const body = {
    critical: {
      identity: { "docker-reference": opts.dockerReference },
      image: { "docker-manifest-digest": opts.manifestDigest },
      type: COSIGN_SIGNATURE_TYPE,
    },
    optional: { [SIGNED_AT_KEY]: rfc3339Seconds(opts.signedAt), ...extra },
  };
  return Buffer.from(JSON.stringify(body), "utf8");
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

const payloadSchema = z.strictObject({
  critical: z.strictObject({
    identity: z.strictObject({ "docker-reference": z.string().min(1) }),
    image: z.strictObject({ "docker-manifest-digest": z.string().refine(isSha256Digest) }),
    type: z.literal(COSIGN_SIGNATURE_TYPE),
  }),
  // cosign writes `"optional": null` when there are no annotations.
  optional: z
    .custom<Record<string, unknown>>(isPlainObject)
    .refine((o) => !Object.hasOwn(o, SIGNED_AT_KEY) || typeof o[SIGNED_AT_KEY] === "string")
    .nullable()
    .optional(),
});


function decodeJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new SignError("PAYLOAD_INVALID", "The payload is not UTF-8 JSON.", { cause: e, details: { fields: [] } });
  }
}

/**
 * Parses and strictly validates a simple-signing payload. Throws only
 * {@link SignError} `PAYLOAD_INVALID`. Verify the signature over the raw
 * bytes first: only then is the content worth reading.
 *
 * ### Examples
 * ```ts
 * if (!verifyPayloadSignature(pub, bytes, sig)) throw …
 * const { manifestDigest, signedAt } = parseSimpleSigningPayload(bytes)
 * ```
 */
export function parseSimpleSigningPayload(bytes: Uint8Array): SimpleSigningPayload {
  if (!(bytes instanceof Uint8Array)) throw invalid("The payload must be bytes.");
  const r = payloadSchema.safeParse(decodeJson(bytes));
  if (!r.success) {
    const fields = fieldProblems(r.error.issues).map((p) => p.field);
    throw invalid(`The payload is not a cosign simple-signing payload (bad fields: ${fields.join(", ")}).`, fields);
  }
  // fromEntries defines own properties, so a "__proto__" annotation stays data, never a prototype.
  const optional = Object.freeze(Object.fromEntries(Object.entries(r.data.optional ?? {})));
  const signedAt = optional[SIGNED_AT_KEY];
  return {
    dockerReference: r.data.critical.identity["docker-reference"],
    manifestDigest: r.data.critical.image["docker-manifest-digest"],
    signedAt: typeof signedAt === "string" ? signedAt : undefined,
    optional,
  };
}
