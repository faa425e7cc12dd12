// Independent check of the release statement: Debian's securesystemslib (via
// test/helpers/dsse_verify.py, which computes PAE from the DSSE spec itself) and
// `openssl dgst -verify` read the envelopes we sign. Neither is our code.
import { spawnSync } from "node:child_process";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { writeFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { decodeBase64Strict, generateKeyPair, keyIdOf, preAuthEncoding } from "../../src/sign/index.js";
import { openStatement, signStatement } from "../../src/supplychain/index.js";
import { needs } from "../helpers/needs.js";
import { fakeDigest, samplePredicate } from "../helpers/statements.js";

const verifier = join(import.meta.dirname, "../helpers/dsse_verify.py");
const predicate = samplePredicate(7);

let dir: string;
let n = 0;
const keys = [generateKeyPair(), generateKeyPair(), generateKeyPair()];
const pubPath = (i: number): string => join(dir, `k${i}.pub`);
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "statement-independent-"));
  for (const [i, k] of keys.entries()) await writeFile(pubPath(i), k.publicPem);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function python(env: unknown, threshold: number, image: string, pubs: number[]): { status: number | null; out: string } {
  const file = join(dir, `env-${(n += 1)}.json`);
  writeFileSync(file, JSON.stringify(env));
  const r = spawnSync("/usr/bin/python3", [verifier, file, String(threshold), image, ...pubs.map(pubPath)], { encoding: "utf8" });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

needs("securesystemslib").describe("securesystemslib verifies our release statements", () => {
  const priv = (i: number) => createPrivateKey(keys[i]!.privatePem);

  it("a 1-of-1 statement verifies and its predicate is ours, byte for byte", () => {
    const { envelope } = signStatement(predicate, [priv(0)]);
    const r = python(envelope, 1, predicate.image.digest, [0]);
    expect(r.out).not.toContain("FAIL");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.out)).toEqual(predicate);
  });

  it("another key, a tampered payload and a wrong image digest fail there too", () => {
    const { envelope } = signStatement(predicate, [priv(0)]);
    expect(python(envelope, 1, predicate.image.digest, [1]).status).toBe(1);
    const tampered = { ...envelope, payload: Buffer.from(Buffer.from(envelope.payload, "base64").toString().replace('"sequence":7', '"sequence":9')).toString("base64") };
    expect(python(tampered, 1, predicate.image.digest, [0]).status).toBe(1);
    expect(python(envelope, 1, fakeDigest("f"), [0]).out).toContain("no subject");
  });

  it("2-of-3: two distinct signers pass, one signer listed twice does not — and ours agrees", () => {
    const { envelope } = signStatement(predicate, [priv(0), priv(2)]);
    expect(python(envelope, 2, predicate.image.digest, [0, 1, 2]).status).toBe(0);
    const one = signStatement(predicate, [priv(0)]).envelope;
    const doubled = { ...one, signatures: [one.signatures[0]!, one.signatures[0]!] };
    expect(python(doubled, 2, predicate.image.digest, [0, 1, 2]).status).toBe(1);
    const trusted = keys.map((k) => ({ keyId: keyIdOf(createPublicKey(k.publicPem)), key: createPublicKey(k.publicPem) }));
    expect(openStatement(envelope, trusted, 2).predicate).toEqual(predicate);
    expect(() => openStatement(doubled, trusted, 2)).toThrow(/threshold/);
  });
});

needs("openssl").it("openssl dgst -verify accepts the DER signature over PAE", async () => {
  const { envelope } = signStatement(predicate, [createPrivateKey(keys[0]!.privatePem)]);
  const pae = preAuthEncoding(envelope.payloadType, decodeBase64Strict(envelope.payload)!);
  await writeFile(join(dir, "pae.bin"), pae);
  await writeFile(join(dir, "sig.der"), decodeBase64Strict(envelope.signatures[0]!.sig)!);
  const ok = spawnSync("openssl", ["dgst", "-sha256", "-verify", pubPath(0), "-signature", join(dir, "sig.der"), join(dir, "pae.bin")], { encoding: "utf8" });
  expect(ok.stdout.trim()).toBe("Verified OK");
  const bad = spawnSync("openssl", ["dgst", "-sha256", "-verify", pubPath(1), "-signature", join(dir, "sig.der"), join(dir, "pae.bin")], { encoding: "utf8" });
  expect(bad.status).not.toBe(0);
});
