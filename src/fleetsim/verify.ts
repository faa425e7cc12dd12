import type { Release } from "../cpapi/index.js";
import { StatementRejected, verifyStatementEnvelope } from "../supplychain/index.js";
import type { TrustedKey } from "../sign/index.js";

/** What every device trusts (one set for the fleet, as one operator's nodes share a trust root). */
export interface FleetTrust {
  trusted: readonly TrustedKey[];
  threshold: number;
  /** The signed identity the nodes expect (`host/path`, or what the release was signed for). */
  repository: string;
}

export type Verdict = { ok: true; sequence: number; lock_fingerprint: string; statement_digest: string } | { ok: false; code: string; detail: string };

/**
 * A device's verification of the release statement the control plane handed
 * it: the envelope's bytes through src/supplychain's own statement check
 * (DSSE threshold of trusted keys, the statement schema, image digest pinned
 * to the release's, repository, channel, expiry, issue time), then the
 * node's sequence floor. The lock and bundle are NOT fetched from the image:
 * a thousand devices pulling one registry measure the registry, not the
 * control plane (docs/lab-fleet.md). `corrupt` simulates a transfer that
 * damaged the bytes: one base64 character of the signed payload flipped.
 */
export function verifyRelease(r: Release, trust: FleetTrust, channel: string, floor: number, corrupt: boolean, now: Date): Verdict {
  const envelope = corrupt ? corruptEnvelope(r.statement) : r.statement;
  const bytes = Buffer.from(JSON.stringify(envelope), "utf8");
  try {
    const s = verifyStatementEnvelope(bytes, r.image_digest, { ...trust, channel, now });
    const p = s.predicate;
    if (p.sequence <= floor) return { ok: false, code: "ACTIVATION_ROLLBACK_REFUSED", detail: `sequence ${p.sequence} is not above the activated ${floor}` };
    return { ok: true, sequence: p.sequence, lock_fingerprint: p.lock.behavioral_fingerprint, statement_digest: s.digest };
  } catch (e) {
    if (e instanceof StatementRejected) return { ok: false, code: "STATEMENT_MISSING", detail: `no valid release statement: ${e.reason}` };
    throw e;
  }
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** The envelope with one character in the middle of its payload replaced by another base64 character. */
export function corruptEnvelope<E extends { payload: string }>(env: E): E {
  const i = Math.floor(env.payload.length / 2);
  const c = env.payload[i] ?? "A";
  const swapped = B64[(B64.indexOf(c) + 1) % B64.length] ?? "A";
  return { ...env, payload: env.payload.slice(0, i) + swapped + env.payload.slice(i + 1) };
}
