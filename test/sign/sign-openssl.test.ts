// Independent check: what we sign and the keys we write are read back by OpenSSL, which we did
// not write, and what OpenSSL signs verifies with our code.
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  keyIdOf,
  buildSimpleSigningPayload,
  loadPrivateKey,
  loadPublicKey,
  parseSimpleSigningPayload,
  signPayload,
  verifyPayloadSignature,
  writeKeyPair,
} from "../../src/sign/index.js";
import { needs } from "../helpers/needs.js";

const withOpenssl = needs("openssl");

const PASSWORD = "s3cret-for-openssl-test";

function openssl(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync("openssl", args, { input, encoding: "utf8" });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir: string;
let prefix: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sign-openssl-"));
  prefix = join(dir, "cosign");
  await writeKeyPair(prefix, { password: PASSWORD });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

withOpenssl.describe("openssl verifies our signatures", () => {
  let payload: Uint8Array;
  beforeAll(async () => {
    payload = buildSimpleSigningPayload({
      dockerReference: "registry.example.com/fleet/arm-agent",
      manifestDigest: `sha256:${"7e".repeat(32)}`,
      signedAt: new Date("2025-01-02T03:04:05Z"),
    });
    const sig = signPayload(await loadPrivateKey(`${prefix}.key`, PASSWORD), payload);
    await writeFile(join(dir, "payload.json"), payload);
    await writeFile(join(dir, "sig.der"), Buffer.from(sig, "base64"));
  });

  it("prints Verified OK for the payload we signed", () => {
    const r = openssl(["dgst", "-sha256", "-verify", `${prefix}.pub`, "-signature", join(dir, "sig.der"), join(dir, "payload.json")]);
    expect(r.stdout.trim()).toBe("Verified OK");
    expect(r.status).toBe(0);
  });

  it("fails when one payload byte is flipped", async () => {
    const tampered = Buffer.from(payload);
    tampered[tampered.length - 3]! ^= 0x01;
    await writeFile(join(dir, "tampered.json"), tampered);
    const r = openssl(["dgst", "-sha256", "-verify", `${prefix}.pub`, "-signature", join(dir, "sig.der"), join(dir, "tampered.json")]);
    expect(r.status).not.toBe(0);
    expect(r.stdout).toContain("Verification failure");
  });
});

withOpenssl.describe("openssl reads our keys", () => {
  it("decrypts the private key with the password and derives our public key", async () => {
    const priv = openssl(["pkey", "-in", `${prefix}.key`, "-passin", `pass:${PASSWORD}`, "-noout", "-text"]);
    expect(priv.status, priv.stderr).toBe(0);
    expect(priv.stdout).toMatch(/NIST CURVE: P-256|prime256v1/);
    const pub = openssl(["pkey", "-in", `${prefix}.key`, "-passin", `pass:${PASSWORD}`, "-pubout"]);
    expect(pub.status, pub.stderr).toBe(0);
    expect(pub.stdout).toBe(await readFile(`${prefix}.pub`, "utf8"));
  });

  it("refuses the private key with a wrong password", () => {
    expect(openssl(["pkey", "-in", `${prefix}.key`, "-passin", "pass:wrong", "-noout"]).status).not.toBe(0);
  });
});

withOpenssl.describe("we read openssl's keys and signatures", () => {
  it("loads an openssl-encrypted PKCS#8 P-256 key and verifies an openssl signature", async () => {
    const keyPath = join(dir, "ossl.key");
    const gen = openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-aes-256-cbc", "-pass", `pass:${PASSWORD}`, "-out", keyPath]);
    expect(gen.status, gen.stderr).toBe(0);
    const pubPath = join(dir, "ossl.pub");
    expect(openssl(["pkey", "-in", keyPath, "-passin", `pass:${PASSWORD}`, "-pubout", "-out", pubPath]).status).toBe(0);
    await expect(loadPrivateKey(keyPath, PASSWORD)).resolves.toMatchObject({ asymmetricKeyType: "ec" });

    const payload = buildSimpleSigningPayload({
      dockerReference: "r/a",
      manifestDigest: `sha256:${"0f".repeat(32)}`,
      signedAt: new Date("2025-01-02T03:04:05Z"),
    });
    await writeFile(join(dir, "p2.json"), payload);
    const sign = spawnSync("openssl", ["dgst", "-sha256", "-sign", keyPath, "-passin", `pass:${PASSWORD}`, join(dir, "p2.json")]);
    expect(sign.status, sign.stderr.toString()).toBe(0);
    const sig = sign.stdout.toString("base64");
    const pub = await loadPublicKey(pubPath);
    expect(verifyPayloadSignature(pub, payload, sig)).toBe(true);
    expect(parseSimpleSigningPayload(payload).manifestDigest).toBe(`sha256:${"0f".repeat(32)}`);
  });
});

withOpenssl.describe("key ids do not depend on the key's encoding", () => {
  it("attack threshold bypass through key encoding: the release key re-encoded by `openssl ec -conv_form compressed -pubout` loads with the same key id, so listing both never makes two trusted keys", async () => {
    const compressedPath = join(dir, "compressed.pub");
    const r = openssl(["ec", "-pubin", "-in", `${prefix}.pub`, "-conv_form", "compressed", "-pubout", "-out", compressedPath]);
    expect(r.status, r.stderr).toBe(0);
    const [plain, compressed] = [await loadPublicKey(`${prefix}.pub`), await loadPublicKey(compressedPath)];
    expect(await readFile(compressedPath, "utf8")).not.toBe(await readFile(`${prefix}.pub`, "utf8"));
    expect(keyIdOf(compressed)).toBe(keyIdOf(plain));
  });
});
