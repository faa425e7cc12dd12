import { sign, verify } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { UsageError } from "../lib/index.js";

/**
 * Signs `payload` with ECDSA-SHA256 and returns the DER signature as base64,
 * the encoding cosign stores in its `dev.cosignproject.cosign/signature` annotation.
 *
 * ### Examples
 * ```ts
 * const sig = signPayload(await loadPrivateKey("cosign.key", password), payload)
 * ```
 */
export function signPayload(privateKey: KeyObject, payload: Uint8Array): string {
  return sign("sha256", payload, { key: privateKey, dsaEncoding: "der" }).toString("base64");
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * True when `b64sig` is a valid ECDSA-SHA256 DER signature of `payload` by
 * `publicKey`. Never throws: malformed keys, payloads or signatures are simply
 * not valid signatures (the signature is attacker-controlled input).
 *
 * ### Examples
 * ```ts
 * if (!verifyPayloadSignature(pub, payload, sig)) return "not signed by this key"
 * ```
 */
export function verifyPayloadSignature(publicKey: KeyObject, payload: Uint8Array, b64sig: string): boolean {
  try {
    // Buffer.from(…, "base64") skips junk silently; insist on strict, padded base64 instead.
    if (typeof b64sig !== "string" || b64sig.length === 0 || !BASE64_RE.test(b64sig)) return false;
    if (!(payload instanceof Uint8Array)) return false;
    const der = Buffer.from(b64sig, "base64");
    return verify("sha256", payload, { key: publicKey, dsaEncoding: "der" }, der);
  } catch {
    return false;
  }
}

/** Milliseconds per unit: Go's time.ParseDuration units, plus "d" (24h) for convenience. */
const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3, // U+00B5 micro sign, as Go accepts
  "μs": 1e-3, // U+03BC Greek mu, as Go accepts
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const DURATION_RE = /^(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h|d))+$/;
const PART_RE = /(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)/g;

/**
 * Parses a Go-style duration ("8760h", "30m", "1h30m", "1.5h", "90s", plus
 * "7d") into milliseconds, for flags such as `--expires-in`. Negative or signed
 * values are refused. Throws {@link UsageError} on bad input.
 *
 * ### Examples
 * ```ts
 * parseDuration("1h30m") // 5_400_000
 * ```
 */
export function parseDuration(text: string): number {
  if (text === "0") return 0;
  if (typeof text !== "string" || !DURATION_RE.test(text)) {
    throw new UsageError(
      `Invalid duration ${JSON.stringify(String(text).slice(0, 40))}.`,
      'Use a number and a unit (ns, us, ms, s, m, h, d), optionally combined: "30m", "1h30m", "8760h", "7d".',
    );
  }
  let total = 0;
  for (const [, n, unit] of text.matchAll(PART_RE)) total += Number(n) * UNIT_MS[unit!]!;
  // Drop binary floating-point noise ("0.3s" → 300, not 300.00000000000006); keeps nanosecond resolution.
  const ms = Math.round(total * 1e6) / 1e6;
  if (!Number.isFinite(ms) || ms > Number.MAX_SAFE_INTEGER) {
    throw new UsageError(`Duration ${JSON.stringify(text.slice(0, 40))} is too large.`, "Use a shorter duration.");
  }
  return ms;
}
