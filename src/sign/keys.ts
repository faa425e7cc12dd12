import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { access, readFile } from "node:fs/promises";
import { errnoCode, writeFileAtomic } from "../lib/index.js";
import { SignError } from "./errors.js";

/** A P-256 key pair as PEM text: PKCS#8 private (encrypted when a password was given), SPKI public. */
export interface KeyPairPem {
  privatePem: string;
  publicPem: string;
}

/** Options for {@link generateKeyPair}. An empty password means "no password", as an unset variable would. */
export interface GenerateKeyPairOptions {
  password?: string;
}

/**
 * Generates an ECDSA P-256 key pair. With a password the private key is
 * PKCS#8 encrypted with AES-256-CBC (readable by `openssl pkey -passin`).
 * Synchronous: a P-256 key takes well under a millisecond.
 *
 * ### Examples
 * ```ts
 * const { privatePem, publicPem } = generateKeyPair({ password: process.env.AUTONOMY_KEY_PASSWORD })
 * ```
 */
export function generateKeyPair(opts: GenerateKeyPairOptions = {}): KeyPairPem {
  const encrypt = opts.password ? { cipher: "aes-256-cbc", passphrase: opts.password } : {};
  const { privateKey, publicKey } = generateKeyPairSync("ec", {
    namedCurve: "P-256",
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem", ...encrypt },
  });
  return { privatePem: privateKey, publicPem: publicKey };
}

/** Options for {@link writeKeyPair}. */
export interface WriteKeyPairOptions extends GenerateKeyPairOptions {
  /** Overwrite an existing PREFIX.key / PREFIX.pub. */
  force?: boolean;
}

/** Where {@link writeKeyPair} put the keys. */
export interface KeyPairPaths {
  privateKeyPath: string;
  publicKeyPath: string;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/**
 * Generates a key pair and writes `PREFIX.key` (mode 0600) and `PREFIX.pub`
 * (0644) durably. Refuses (`KEY_EXISTS`) to replace either file unless `force`.
 *
 * ### Examples
 * ```ts
 * const { publicKeyPath } = await writeKeyPair("cosign", { password })
 * ```
 */
export async function writeKeyPair(prefix: string, opts: WriteKeyPairOptions = {}): Promise<KeyPairPaths> {
  const paths = { privateKeyPath: `${prefix}.key`, publicKeyPath: `${prefix}.pub` };
  for (const path of Object.values(paths)) {
    if (!opts.force && (await exists(path))) {
      throw new SignError("KEY_EXISTS", `${path} already exists.`, { details: { path } });
    }
  }
  const pair = generateKeyPair(opts);
  // Private key first: a crash in between leaves no .pub pointing at a key that does not exist.
  await writeFileAtomic(paths.privateKeyPath, pair.privatePem, 0o600);
  await writeFileAtomic(paths.publicKeyPath, pair.publicPem, 0o644);
  return paths;
}

async function readKeyFile(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    const why = errnoCode(e) ?? "read error";
    throw new SignError("KEY_UNREADABLE", `Cannot read key file ${path} (${why}).`, { cause: e, details: { path } });
  }
}

/** Only ECDSA over P-256 (OpenSSL's name: prime256v1), the curve cosign uses by default. */
function assertP256(key: KeyObject, path: string): KeyObject {
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    const kind = key.asymmetricKeyDetails?.namedCurve ?? key.asymmetricKeyType ?? "unknown";
    throw new SignError("KEY_NOT_P256", `${path} is a ${kind} key, not ECDSA P-256.`, { details: { path } });
  }
  return key;
}

const COSIGN_FORMAT_RE = /-----BEGIN ENCRYPTED (SIGSTORE|COSIGN) PRIVATE KEY-----/;
const ENCRYPTED_RE = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/;

/** Decrypts/decodes a private key PEM; the OpenSSL error is kept as `cause` only (it never contains the key). */
function decodePrivateKey(pem: string, path: string, password: string | undefined): KeyObject {
  const encrypted = ENCRYPTED_RE.test(pem);
  if (encrypted && !password) {
    throw new SignError("KEY_PASSWORD_REQUIRED", `${path} is encrypted and no password was given.`, { details: { path } });
  }
  try {
    return createPrivateKey({ key: pem, format: "pem", ...(encrypted ? { passphrase: password } : {}) });
  } catch (e) {
    if (encrypted) throw new SignError("KEY_PASSWORD_WRONG", `The password does not decrypt ${path}.`, { details: { path } });
    throw new SignError("KEY_UNREADABLE", `${path} is not a PEM private key.`, { cause: e, details: { path } });
  }
}

/**
 * Loads an ECDSA P-256 private key from a PEM file (PKCS#8, encrypted or not,
 * or SEC1). Errors name the file, never the key or the password.
 *
 * ### Examples
 * ```ts
 * const key = await loadPrivateKey("cosign.key", process.env.AUTONOMY_KEY_PASSWORD)
 * ```
 */
export async function loadPrivateKey(path: string, password?: string): Promise<KeyObject> {
  const pem = await readKeyFile(path);
  if (COSIGN_FORMAT_RE.test(pem)) {
    throw new SignError("KEY_UNREADABLE", `${path} is in cosign's own key format, which is not supported.`, {
      details: { path },
    });
  }
  return assertP256(decodePrivateKey(pem, path, password), path);
}

/**
 * Loads an ECDSA P-256 public key from an SPKI PEM file (`-----BEGIN PUBLIC KEY-----`,
 * the format `cosign.pub` uses). A private key file is refused, so a
 * misplaced secret is never silently accepted as a verification key.
 */
export async function loadPublicKey(path: string): Promise<KeyObject> {
  const pem = await readKeyFile(path);
  if (!pem.includes("-----BEGIN PUBLIC KEY-----")) {
    throw new SignError("KEY_UNREADABLE", `${path} is not a PEM public key.`, { details: { path } });
  }
  try {
    return assertP256(createPublicKey({ key: pem, format: "pem" }), path);
  } catch (e) {
    if (e instanceof SignError) throw e;
    throw new SignError("KEY_UNREADABLE", `${path} is not a valid PEM public key.`, { cause: e, details: { path } });
  }
}
