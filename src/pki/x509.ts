// @peculiar/x509 decorates its ASN.1 classes with metadata: reflect-metadata must load first.
import "reflect-metadata";
import { createPrivateKey, randomBytes, webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { PkiError } from "./errors.js";

// Node's WebCrypto is the provider every generator and verifier here uses.
// Node's types and the DOM-shaped ones @peculiar/x509 declares differ only nominally.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;

export const EC_ALGORITHM = { name: "ECDSA", namedCurve: "P-256" } as const;
export const SIGNING_ALGORITHM = { name: "ECDSA", hash: "SHA-256" } as const;

/** A fresh P-256 key pair (extractable, so the private key can be written as PKCS#8). */
export async function generateP256(): Promise<CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(EC_ALGORITHM, true, ["sign", "verify"]);
}

/** The private key as PKCS#8 PEM (what openssl, Node's tls and `readTlsIdentity` read). */
export async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  return x509.PemConverter.encode(der, "PRIVATE KEY") + "\n";
}

/** A P-256 signing key from PEM (PKCS#8 or SEC1 "EC PRIVATE KEY"), via Node's parser. */
export async function importSigningKey(pem: string, file: string): Promise<CryptoKey> {
  let der: Buffer;
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
      throw new Error(`the key is ${key.asymmetricKeyType ?? "unknown"} ${key.asymmetricKeyDetails?.namedCurve ?? ""}, not ECDSA P-256`.trim());
    }
    der = key.export({ type: "pkcs8", format: "der" });
  } catch (e) {
    throw new PkiError("CA_UNREADABLE", `${file} is not a usable CA private key: ${reason(e)}`, { cause: e });
  }
  return webcrypto.subtle.importKey("pkcs8", der, EC_ALGORITHM, false, ["sign"]);
}

/**
 * A random 16-byte serial that DER encodes in exactly 16 bytes as a positive
 * INTEGER: top bit clear (positive), next bit set (no leading zero byte to
 * strip). 126 random bits — unguessable, and unique enough to revoke by serial later.
 */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = ((b[0] ?? 0) & 0x3f) | 0x40;
  return b.toString("hex");
}

/** The first line of an error's message: parsers append dumps we do not want in user output. */
export function reason(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return (m.split("\n")[0] ?? "").slice(0, 200) || "unknown error";
}
