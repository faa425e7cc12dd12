import { describe, expect, it } from "vitest";
import { generateKeyPair, keyIdOf, signEnvelope } from "../../sign/index.js";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { RUNTIME_MANIFEST_TYPE, isSafeRelativePath, parseRuntimeManifest, verifyRuntimeEnvelope } from "./manifest.js";

const file = (path: string) => ({ path, size: 1, sha256: `sha256:${"a".repeat(64)}`, mode: 0o644 });
const payload = (files: unknown[]) => Buffer.from(JSON.stringify({ version: 1, sequence: 1, files }));

describe("runtime manifest", () => {
  it("accepts only safe relative paths", () => {
    for (const ok of ["bin/edged", "a", "lib/x-1.2_3+y@z.wasm"]) expect(isSafeRelativePath(ok), ok).toBe(true);
    for (const bad of ["", "/etc/passwd", "../x", "a/../b", "a/./b", "a//b", "a/", "a\\b", "a\u0000b", "a b", "."]) expect(isSafeRelativePath(bad), JSON.stringify(bad)).toBe(false);
  });

  it("refuses unsafe paths, duplicates and a file that is also a directory", () => {
    expect(() => parseRuntimeManifest(payload([file("../escape")]))).toThrow(/relative path/);
    expect(() => parseRuntimeManifest(payload([file("a"), file("a")]))).toThrow(/twice/);
    expect(() => parseRuntimeManifest(payload([file("a"), file("a/b")]))).toThrow(/which is a file/);
    expect(parseRuntimeManifest(payload([file("a/b"), file("a/c")])).files).toHaveLength(2);
    // The sequence orders runtimes (rollback refusal at stage time): a manifest without one is malformed.
    expect(() => parseRuntimeManifest(Buffer.from(JSON.stringify({ version: 1, files: [file("a")] })))).toThrow(/sequence/);
  });

  it("verifies only under the trust root's keys and threshold, and only as a runtime manifest", () => {
    const k = generateKeyPair({});
    const priv = createPrivateKey(k.privatePem);
    const pub = createPublicKey(k.publicPem);
    const trusted = [{ keyId: keyIdOf(pub), key: pub }];
    const body = payload([file("bin/x")]);
    const good = Buffer.from(JSON.stringify(signEnvelope(RUNTIME_MANIFEST_TYPE, body, [priv])));
    expect(verifyRuntimeEnvelope(good, trusted, 1).files[0]?.path).toBe("bin/x");
    expect(() => verifyRuntimeEnvelope(good, trusted, 2)).toThrow(/1 of the required 2/);
    const other = createPrivateKey(generateKeyPair({}).privatePem);
    expect(() => verifyRuntimeEnvelope(Buffer.from(JSON.stringify(signEnvelope(RUNTIME_MANIFEST_TYPE, body, [other]))), trusted, 1)).toThrow(/does not verify/);
    expect(() => verifyRuntimeEnvelope(Buffer.from(JSON.stringify(signEnvelope("application/vnd.in-toto+json", body, [priv]))), trusted, 1)).toThrow(/payloadType/);
  });
});
