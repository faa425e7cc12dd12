import { createHash, createPublicKey, sign, verify } from "node:crypto";
import type { KeyObject } from "node:crypto";

/**
 * DSSE v1 (secure-systems-lab/dsse v1.0.2): the envelope cosign, in-toto and
 * Sigstore bundles carry. The signature covers PAE(payloadType, payload), so
 * neither the type nor the bytes can be swapped without breaking it. Signed
 * bytes are shipped as they are: no JSON canonicalisation, and a verifier hands
 * the caller exactly the bytes it verified.
 */
export interface DsseSignature {
  keyid: string;
  sig: string;
}

export interface DsseEnvelope {
  payload: string;
  payloadType: string;
  signatures: DsseSignature[];
}

/** A trusted verification key with the id it is known by (SHA-256 of its SPKI DER, hex). */
export interface TrustedKey {
  keyId: string;
  key: KeyObject;
}

/**
 * The key id we use everywhere: lowercase hex SHA-256 of the public key's SPKI
 * DER, in ONE canonical encoding. An EC point can be written compressed or
 * uncompressed; hashing the SPKI as given would give one key two ids, and two
 * "distinct" keys would meet a threshold of 2 with one signer. EC keys are
 * therefore rebuilt from their JWK (x, y), which always exports uncompressed
 * (the encoding `autonomy keys generate` writes, so existing ids are unchanged).
 */
export function keyIdOf(key: KeyObject): string {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  return createHash("sha256").update(canonicalSpki(pub)).digest("hex");
}

function canonicalSpki(pub: KeyObject): Buffer {
  if (pub.asymmetricKeyType !== "ec") return pub.export({ type: "spki", format: "der" });
  return createPublicKey({ key: pub.export({ format: "jwk" }), format: "jwk" }).export({ type: "spki", format: "der" });
}

/** An envelope with more signatures than this (for the trusted keys given) is refused before any crypto: a CPU bomb otherwise. */
export function maxSignatures(trustedKeys: number): number {
  return Math.max(16, 2 * trustedKeys);
}
/** An ECDSA P-256 signature in ASN.1 DER is 8 to 72 bytes; anything else is not tried against any key. */
const DER_SIG_MIN = 8;
const DER_SIG_MAX = 72;

/** `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`, lengths in bytes (never string length). */
export function preAuthEncoding(payloadType: string, body: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, "utf8");
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${body.length} `), body]);
}

/**
 * Signs `body` with every key (ECDSA-SHA256, ASN.1 DER: the form cosign,
 * securesystemslib and OpenSSL verify). `keyid` is left empty, as cosign v3
 * writes it: a keyid is an unauthenticated hint and verifiers here never use it.
 */
export function signEnvelope(payloadType: string, body: Uint8Array, keys: readonly KeyObject[]): DsseEnvelope {
  const pae = preAuthEncoding(payloadType, body);
  return {
    payloadType,
    payload: Buffer.from(body).toString("base64"),
    signatures: keys.map((key) => ({ keyid: "", sig: sign("sha256", pae, { key, dsaEncoding: "der" }).toString("base64") })),
  };
}

const B64_STD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const B64_URL = /^[A-Za-z0-9_-]*$/;

/** RFC 4648 base64, standard (padded) or URL-safe (padding optional), strictly: DSSE verifiers MUST accept both. */
export function decodeBase64Strict(s: string): Buffer | undefined {
  if (B64_STD.test(s)) return Buffer.from(s, "base64");
  const unpadded = s.endsWith("==") ? s.slice(0, -2) : s.endsWith("=") ? s.slice(0, -1) : s;
  if (!B64_URL.test(unpadded) || unpadded.length % 4 === 1) return undefined;
  return Buffer.from(unpadded, "base64url");
}

/** Why an envelope did not verify; `undefined` fields mean "not reached". */
export type DsseFailure =
  | { reason: "malformed"; detail: string }
  | { reason: "threshold"; detail: string; validKeys: string[] }
  | { reason: "payload-type"; detail: string };

export type DsseResult = { ok: true; payload: Buffer; keyIds: string[] } | ({ ok: false } & DsseFailure);

/**
 * Parses an envelope's JSON shape (unknown fields ignored, as DSSE requires).
 * Returns a reason instead of throwing: the bytes come from a registry.
 */
export function parseEnvelope(bytes: Uint8Array): DsseEnvelope | string {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    return "not JSON";
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return "not a JSON object";
  const e = doc as Record<string, unknown>;
  if (typeof e.payload !== "string" || typeof e.payloadType !== "string" || !Array.isArray(e.signatures)) {
    return "payload, payloadType and signatures are required";
  }
  const signatures: DsseSignature[] = [];
  for (const s of e.signatures as unknown[]) {
    if (typeof s !== "object" || s === null) return "a signature is not an object";
    const { sig, keyid } = s as Record<string, unknown>;
    if (typeof sig !== "string" || (keyid !== undefined && typeof keyid !== "string")) return "a signature has no string sig";
    signatures.push({ sig, keyid: keyid ?? "" });
  }
  return { payload: e.payload, payloadType: e.payloadType, signatures };
}

/**
 * Verifies an envelope against a set of trusted keys: at most
 * {@link maxSignatures} signatures, strict base64, PAE over
 * the decoded payload, every trusted key tried for every signature (the
 * envelope's keyid never selects a key), unique keys counted against
 * `threshold`; only then the payloadType is compared. On success the caller
 * gets exactly the verified bytes.
 */
export function verifyEnvelope(env: DsseEnvelope, trusted: readonly TrustedKey[], threshold: number, payloadType: string): DsseResult {
  // Each signature is tried against every key: the count is bounded before any crypto.
  const bound = maxSignatures(new Set(trusted.map((t) => t.keyId)).size);
  if (env.signatures.length > bound) return { ok: false, reason: "malformed", detail: `${env.signatures.length} signatures, over the bound of ${bound} (not checked)` };
  const body = decodeBase64Strict(env.payload);
  if (body === undefined) return { ok: false, reason: "malformed", detail: "payload is not base64" };
  const pae = preAuthEncoding(env.payloadType, body);
  const valid = new Set<string>();
  for (const s of env.signatures) {
    const der = decodeBase64Strict(s.sig);
    if (der === undefined || der.length < DER_SIG_MIN || der.length > DER_SIG_MAX) continue;
    for (const t of trusted) {
      if (valid.has(t.keyId)) continue;
      if (safeVerify(t.key, pae, der)) valid.add(t.keyId);
    }
  }
  if (valid.size < threshold) {
    return { ok: false, reason: "threshold", detail: `${valid.size} of the required ${threshold} trusted key(s) signed it`, validKeys: [...valid] };
  }
  if (env.payloadType !== payloadType) return { ok: false, reason: "payload-type", detail: `payloadType is ${JSON.stringify(env.payloadType.slice(0, 100))}, expected ${payloadType}` };
  return { ok: true, payload: body, keyIds: [...valid] };
}

/** crypto.verify returns false on garbage but throws on some malformed DER; both mean "not valid". */
function safeVerify(key: KeyObject, data: Buffer, der: Buffer): boolean {
  try {
    return verify("sha256", data, { key, dsaEncoding: "der" }, der);
  } catch {
    return false;
  }
}
