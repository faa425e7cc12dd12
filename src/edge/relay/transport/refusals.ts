import type { Clock } from "../../../lib/index.js";
import { isoTime, systemClock } from "../../../lib/index.js";
import type { RefusedPeer } from "../../types.js";

export type RefusalReason = RefusedPeer["reason"];

/** How many distinct (direction, peer, reason) refusals are kept; the least recently seen go first. */
export const MAX_REFUSALS = 64;

/**
 * TLS refusals in either direction, aggregated per (direction, peer, reason)
 * with a count and the last time and detail, bounded to {@link MAX_REFUSALS}
 * entries so a scanner trying many addresses cannot grow it without limit.
 * `edgectl relay status` shows {@link list}.
 */
export class RefusalLog {
  readonly #entries = new Map<string, RefusedPeer>();
  readonly #clock: Clock;
  readonly #onRefused: ((r: RefusedPeer) => void) | undefined;

  constructor(opts: { clock?: Clock; onRefused?: (r: RefusedPeer) => void } = {}) {
    this.#clock = opts.clock ?? systemClock;
    this.#onRefused = opts.onRefused;
  }

  record(direction: RefusedPeer["direction"], peer: string, reason: RefusalReason, detail: string): RefusedPeer {
    const key = `${direction}\u0000${peer}\u0000${reason}`;
    const prev = this.#entries.get(key);
    const entry: RefusedPeer = { direction, peer, reason, detail, at: isoTime(this.#clock), count: (prev?.count ?? 0) + 1 };
    // Re-inserting moves the key to the end: Map order is then least recently seen first.
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    while (this.#entries.size > MAX_REFUSALS) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
    this.#onRefused?.({ ...entry });
    return entry;
  }

  /** Newest first; copies. */
  list(): RefusedPeer[] {
    return [...this.#entries.values()].reverse().map((e) => ({ ...e }));
  }
}

/**
 * The refusal reason of a TLS failure code: Node's certificate verification
 * codes (`authorizationError`, or the `code` of a client's verification error)
 * and OpenSSL's alert codes (what the other side told us).
 */
export function tlsRefusalReason(code: string | undefined): RefusalReason {
  switch (code) {
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "UNABLE_TO_GET_ISSUER_CERT":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "CERT_SIGNATURE_FAILURE":
    case "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA":
      return "UNKNOWN_CA";
    case "CERT_HAS_EXPIRED":
    case "ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED":
      return "CERT_EXPIRED";
    case "CERT_NOT_YET_VALID":
      return "CERT_NOT_YET_VALID";
    case "ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE":
    case "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED":
      return "NO_CERTIFICATE";
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return "NAME_MISMATCH";
    default:
      return "TLS_ERROR";
  }
}

const REASON_TEXT: Readonly<Record<RefusalReason, string>> = {
  NO_CERTIFICATE: "no client certificate was presented",
  UNKNOWN_CA: "the certificate was not issued by the fleet CA",
  CERT_EXPIRED: "the certificate has expired",
  CERT_NOT_YET_VALID: "the certificate is not valid yet",
  NAME_MISMATCH: "the certificate is not issued to the expected peer id",
  UNKNOWN_PEER: "the certificate names a node that is not a configured peer",
  TLS_ERROR: "the TLS handshake failed",
};

/** One line for a refusal: the reason in words, then the underlying code. */
export function refusalDetail(reason: RefusalReason, code: string | undefined, extra?: string): string {
  return `${REASON_TEXT[reason]}${code === undefined ? "" : ` (${code})`}${extra === undefined ? "" : `: ${extra}`}`;
}

/** True for the errors that mean a TLS refusal (not a network failure) in either direction. */
export function isTlsRefusalCode(code: string | undefined): boolean {
  return code !== undefined && (tlsRefusalReason(code) !== "TLS_ERROR" || code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_") || /^(CERT_|UNABLE_TO_|INVALID_CA|INVALID_PURPOSE|HOSTNAME_MISMATCH)/.test(code));
}
