import type { KeyObject } from "node:crypto";
import type { Reference } from "../oci/index.js";
import { keyIdOf } from "../sign/index.js";
import type { TrustedKey } from "../sign/index.js";

/** Public keys as the trusted set a statement is verified against; the same key listed twice counts once. */
export function trustedKeys(keys: readonly KeyObject[]): TrustedKey[] {
  const byId = new Map<string, TrustedKey>();
  for (const key of keys) {
    const keyId = keyIdOf(key); // canonicalises and hashes the key: once per key
    byId.set(keyId, { keyId, key });
  }
  return [...byId.values()];
}

/**
 * The signed identity of a registry reference: `host/path`, as the statement's
 * `repository` carries it. An `oci:` layout path says nothing about where a
 * release was published (air-gapped copies live anywhere), so it has none:
 * callers must be told the repository explicitly (fail closed).
 */
export function releaseRepository(ref: Reference): string | undefined {
  return ref.kind === "registry" ? `${ref.registry}/${ref.repository}` : undefined;
}
