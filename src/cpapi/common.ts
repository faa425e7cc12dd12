import { z } from "zod";
import { parseRfc3339 } from "../lib/index.js";

/**
 * Shapes every control-plane body shares. Request bodies are strict (an
 * unknown field is a 400 naming it); response bodies are parsed leniently by
 * clients (`z.looseObject`) so a newer server may add fields.
 */

/** A node's identity: DNS-label-like, so it is safe in paths, logs and label selectors. */
export const NodeId = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "a node id is 1–63 of a-z 0-9 . _ - starting with a letter or digit");
export type NodeId = z.infer<typeof NodeId>;

/** `rel-` + 16 hex: the first 64 bits of the SHA-256 of the release statement envelope's bytes (content-addressed, so publishing twice is idempotent). */
export const ReleaseId = z.string().regex(/^rel-[0-9a-f]{16}$/, "a release id is rel- followed by 16 lowercase hex digits");
export type ReleaseId = z.infer<typeof ReleaseId>;

/** A release channel: the statement's `channel`. */
export const Channel = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,31}$/, "a channel is 1–32 of a-z 0-9 . _ - starting with a letter or digit");

/** The instants a stored time can name: years 0000–9999 in UTC (beyond them toISOString() writes ±YYYYYY, which no longer sorts as text). */
export const MIN_TIME_MS = Date.parse("0000-01-01T00:00:00Z");
export const MAX_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** RFC 3339 date-time with an explicit offset (what every timestamp on the wire is), within years 0000–9999 once in UTC. */
export const Timestamp = z
  .string()
  .max(64)
  .refine((s) => {
    const ms = parseRfc3339(s);
    return ms !== undefined && ms >= MIN_TIME_MS && ms <= MAX_TIME_MS;
  }, "an RFC 3339 date-time with an offset, within years 0000–9999 in UTC, e.g. 2026-12-05T10:00:00Z");

/** Text without control characters (U+0000–U+001F, U+007F): ids and names go into logs, paths and SQL text, where they would forge lines or fail (PostgreSQL refuses U+0000). */
// eslint-disable-next-line no-control-regex -- the control characters are exactly what this refuses
export const NO_CONTROL_RE = /^[^\u0000-\u001f\u007f]*$/;
export const PlainText = z.string().regex(NO_CONTROL_RE, "no control characters (U+0000–U+001F, U+007F)");

export const Sha256Digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, "a sha256:<64 hex> digest");
export const LockFingerprint = z.string().regex(/^blake3:[0-9a-f]{64}$/, "a blake3:<64 hex> behavioral fingerprint");

/** Labels: `key=value` pairs used by rollout selectors. */
export const Labels = z
  .record(z.string().regex(/^[a-z0-9][a-z0-9./_-]{0,62}$/, "a label key is 1–63 of a-z 0-9 . / _ -"), z.string().max(63))
  .refine((l) => Object.keys(l).length <= 64, "at most 64 labels");
export type Labels = z.infer<typeof Labels>;

/** Opaque cursor of a paged list: pass `next_cursor` back as `cursor`. */
export const Cursor = z.string().max(512);

/** `limit` of a paged list: 1–1000, default 100 (as the original's events query). */
export const Limit = z.coerce.number().int().min(1).max(1000).default(100);
