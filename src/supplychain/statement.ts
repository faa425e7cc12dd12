import { z } from "zod";
import { fieldProblems, formatProblems, parseFaithfulJson, parseRfc3339, sha256Digest } from "../lib/index.js";
import { VerificationError, signEnvelope, verifyEnvelope } from "../sign/index.js";
import type { DsseEnvelope, TrustedKey } from "../sign/index.js";
import type { KeyObject } from "node:crypto";

/**
 * The release statement: one in-toto Statement v1 that binds everything one
 * release is (image, lock, policy bundle, sequence, channel, repository,
 * validity window), signed as a DSSE envelope with the release key(s). Nodes
 * trust only what a verified statement binds (TUF's targets + timestamp in one
 * document), so nothing can be mixed in from another release.
 */
export const STATEMENT_TYPE = "https://in-toto.io/Statement/v1";
export const RELEASE_PREDICATE_TYPE = "https://autonomyops.dev/release/v1";
export const IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";
/** Subject names of the lock and the bundle (the image's subject is named by its repository). */
export const LOCK_SUBJECT = "autonomy.lock.json";
export const BUNDLE_SUBJECT = "policy-bundle.tar.gz";
/** Statements and envelopes are small; anything larger is refused before parsing (TUF "endless data"). */
export const MAX_STATEMENT_BYTES = 64 * 1024;

const hex64 = z.string().regex(/^[a-f0-9]{64}$/);
const digest = z.string().regex(/^sha256:[a-f0-9]{64}$/);
// Strict: Date.parse would take 2026-02-30T00:00:00Z as March 2, so a signed date would not be the date used.
const rfc3339Z = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/).refine((s) => parseRfc3339(s) !== undefined, "not a date that exists (RFC 3339, UTC)");
const subjectSchema = z.object({ name: z.string().min(1), digest: z.object({ sha256: hex64 }) });
const size = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** What the predicate carries. Unknown fields are ignored (in-toto: minor versions are additive). */
const predicateSchema = z.object({
  sequence: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  channel: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/),
  repository: z.string().min(1).max(512),
  image: z.object({ digest, mediaType: z.string().min(1) }),
  lock: z.object({ digest, size, behavioral_fingerprint: z.string().regex(/^blake3:[a-f0-9]{64}$/) }),
  policy_bundle: z.object({ digest, size, name: z.string().min(1), version: z.string().min(1) }),
  issued_at: rfc3339Z,
  expires_at: rfc3339Z,
});

/** Exactly the four fields cosign's protojson parser accepts at the top level. */
const statementSchema = z.strictObject({
  _type: z.literal(STATEMENT_TYPE),
  subject: z.array(subjectSchema).min(3).max(16),
  predicateType: z.literal(RELEASE_PREDICATE_TYPE),
  predicate: predicateSchema,
});

export type ReleasePredicate = z.infer<typeof predicateSchema>;

/** A verified statement: the claims, the exact bytes that were signed and their digest. */
export interface ReleaseStatement {
  predicate: ReleasePredicate;
  /** sha256 of the statement bytes: two statements are "the same release" iff these are equal. */
  digest: string;
  bytes: Buffer;
  /** Ids of the trusted keys whose signatures verified. */
  keyIds: string[];
}

const hexOf = (d: string): string => d.slice("sha256:".length);

/** True when `expires_at` is after `issued_at` (both already checked to be real dates). */
function hasValidityWindow(p: ReleasePredicate): boolean {
  const issued = parseRfc3339(p.issued_at);
  const expires = parseRfc3339(p.expires_at);
  return issued !== undefined && expires !== undefined && expires > issued;
}

/** The statement bytes for a predicate; the subjects repeat the three digests so generic in-toto/cosign tools can match them. */
export function buildStatement(p: ReleasePredicate): Buffer {
  const parsed = predicateSchema.safeParse(p);
  if (!parsed.success) {
    throw new VerificationError("STATEMENT_INVALID", `cannot build the release statement: ${formatProblems(fieldProblems(parsed.error.issues))}`, "check the values given to sign (sequence, channel, repository, lock, bundle, --expires-in)");
  }
  const predicate = parsed.data;
  if (!hasValidityWindow(predicate)) {
    throw new VerificationError("STATEMENT_INVALID", `expires_at ${predicate.expires_at} is not after issued_at ${predicate.issued_at}`, "choose a positive validity (--expires-in)");
  }
  const statement = {
    _type: STATEMENT_TYPE,
    subject: [
      { name: predicate.repository, digest: { sha256: hexOf(predicate.image.digest) } },
      { name: LOCK_SUBJECT, digest: { sha256: hexOf(predicate.lock.digest) } },
      { name: BUNDLE_SUBJECT, digest: { sha256: hexOf(predicate.policy_bundle.digest) } },
    ],
    predicateType: RELEASE_PREDICATE_TYPE,
    predicate,
  };
  return Buffer.from(JSON.stringify(statement), "utf8");
}

/** Signs a release statement with the release key(s) into a DSSE envelope. */
export function signStatement(p: ReleasePredicate, keys: readonly KeyObject[]): { envelope: DsseEnvelope; bytes: Buffer; digest: string } {
  const bytes = buildStatement(p);
  return { envelope: signEnvelope(IN_TOTO_PAYLOAD_TYPE, bytes, keys), bytes, digest: sha256Digest(bytes) };
}

/** Why a candidate statement was not accepted (it is skipped, with this reason). */
export class StatementRejected extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/**
 * Verifies an envelope (threshold of trusted keys, payloadType) and parses
 * exactly the verified bytes as a release statement; the subjects must repeat
 * the predicate's digests. Throws {@link StatementRejected} with the reason.
 */
export function openStatement(env: DsseEnvelope, trusted: readonly TrustedKey[], threshold: number): ReleaseStatement {
  const v = verifyEnvelope(env, trusted, threshold, IN_TOTO_PAYLOAD_TYPE);
  if (!v.ok) throw new StatementRejected(`${v.reason}: ${v.detail}`);
  return { predicate: parseStatementBytes(v.payload), digest: sha256Digest(v.payload), bytes: v.payload, keyIds: v.keyIds };
}

/**
 * Parses statement bytes as a release statement WITHOUT verifying any
 * signature: for readers that only index a statement (the control plane,
 * which is advisory) — never for deciding to trust one ({@link openStatement}
 * does that). Same rules as openStatement otherwise: size cap, UTF-8,
 * duplicate keys refused, the schema, subjects repeating the predicate's
 * digests, a validity window. Throws {@link StatementRejected}.
 */
export function parseStatementBytes(payload: Uint8Array): ReleasePredicate {
  if (payload.length > MAX_STATEMENT_BYTES) throw new StatementRejected(`statement is ${payload.length} bytes, over the ${MAX_STATEMENT_BYTES}-byte cap`);
  // Duplicate keys refused (JSON.parse keeps the last one: another reader of the same signed bytes could see the first).
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(payload);
  } catch {
    throw new StatementRejected("signed payload is not UTF-8");
  }
  const doc = parseFaithfulJson(text);
  if (!doc.ok) throw new StatementRejected(doc.kind === "syntax" ? "signed payload is not JSON" : `signed payload refused (${doc.kind} at ${doc.path}): ${doc.message}`);
  const r = statementSchema.safeParse(doc.value);
  if (!r.success) throw new StatementRejected(`not a release statement: ${formatProblems(fieldProblems(r.error.issues))}`);
  const { predicate, subject } = r.data;
  for (const [name, d] of [[predicate.repository, predicate.image.digest], [LOCK_SUBJECT, predicate.lock.digest], [BUNDLE_SUBJECT, predicate.policy_bundle.digest]] as const) {
    if (!subject.some((s) => s.name === name && s.digest.sha256 === hexOf(d))) throw new StatementRejected(`subject ${name} does not repeat the predicate's digest ${d}`);
  }
  if (!hasValidityWindow(predicate)) throw new StatementRejected("expires_at is not after issued_at");
  return predicate;
}
