import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SignError } from "./errors.js";
import { generateKeyPair, loadPrivateKey, loadPublicKey, writeKeyPair } from "./keys.js";

const PASSWORD = "correct horse battery staple";

async function rejection(p: Promise<unknown>): Promise<SignError> {
  const e = await p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(SignError);
  return e as SignError;
}

/** Key material and passwords must never reach a message, hint or details. */
function expectNoSecrets(e: SignError, ...secrets: string[]): void {
  const text = JSON.stringify(e.toJSON());
  for (const s of secrets) expect(text).not.toContain(s);
  expect(text).not.toContain("PRIVATE KEY");
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sign-keys-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("#generateKeyPair", () => {
  it("makes an unencrypted PKCS#8 / SPKI pair without a password", () => {
    const { privatePem, publicPem } = generateKeyPair();
    expect(privatePem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(publicPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
  });

  it("encrypts the private key when given a password", () => {
    const { privatePem } = generateKeyPair({ password: PASSWORD });
    expect(privatePem).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----\n/);
  });
});

describe("#writeKeyPair", () => {
  it("writes PREFIX.key (0600) and PREFIX.pub (0644) that load back", async () => {
    const prefix = join(dir, "sub", "cosign");
    const paths = await writeKeyPair(prefix, { password: PASSWORD });
    expect(paths).toEqual({ privateKeyPath: `${prefix}.key`, publicKeyPath: `${prefix}.pub` });
    expect((await stat(paths.privateKeyPath)).mode & 0o777).toBe(0o600);
    // 0644 minus whatever the umask removes: never writable by others, always readable by the owner.
    const pubMode = (await stat(paths.publicKeyPath)).mode & 0o777;
    expect(pubMode & 0o022).toBe(0);
    expect(pubMode & 0o600).toBe(0o600);
    const priv = await loadPrivateKey(paths.privateKeyPath, PASSWORD);
    const pub = await loadPublicKey(paths.publicKeyPath);
    expect(priv.type).toBe("private");
    expect(pub.export({ type: "spki", format: "pem" })).toBe(await readFile(paths.publicKeyPath, "utf8"));
  });

  describe("when a key file already exists", () => {
    it("throws KEY_EXISTS and leaves it alone", async () => {
      const prefix = join(dir, "exists");
      await writeFile(`${prefix}.pub`, "keep me");
      const e = await rejection(writeKeyPair(prefix));
      expect(e.code).toBe("KEY_EXISTS");
      expect(await readFile(`${prefix}.pub`, "utf8")).toBe("keep me");
    });

    it("overwrites with force", async () => {
      const prefix = join(dir, "forced");
      await writeFile(`${prefix}.key`, "old");
      await writeKeyPair(prefix, { force: true });
      await expect(loadPrivateKey(`${prefix}.key`)).resolves.toBeDefined();
    });
  });
});

describe("#loadPrivateKey", () => {
  let encrypted: string;
  beforeAll(async () => {
    encrypted = join(dir, "enc.key");
    await writeFile(encrypted, generateKeyPair({ password: PASSWORD }).privatePem);
  });

  it("throws KEY_UNREADABLE for a missing file", async () => {
    expect((await rejection(loadPrivateKey(join(dir, "missing.key")))).code).toBe("KEY_UNREADABLE");
  });

  it("throws KEY_PASSWORD_REQUIRED for an encrypted key without a password", async () => {
    for (const pw of [undefined, ""]) {
      const e = await rejection(loadPrivateKey(encrypted, pw));
      expect(e.code).toBe("KEY_PASSWORD_REQUIRED");
      expect(e.hint).toContain("AUTONOMY_KEY_PASSWORD");
    }
  });

  it("throws KEY_PASSWORD_WRONG for a wrong password, without echoing it", async () => {
    const e = await rejection(loadPrivateKey(encrypted, "hunter2-wrong"));
    expect(e.code).toBe("KEY_PASSWORD_WRONG");
    expectNoSecrets(e, "hunter2-wrong", PASSWORD);
  });

  it("throws KEY_NOT_P256 for other curves and key types", async () => {
    const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey.export({ type: "pkcs8", format: "pem" });
    const ed = generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" });
    for (const [name, pem] of [["p384.key", p384], ["ed.key", ed]] as const) {
      await writeFile(join(dir, name), pem);
      const e = await rejection(loadPrivateKey(join(dir, name)));
      expect(e.code).toBe("KEY_NOT_P256");
      expectNoSecrets(e, pem.toString().split("\n")[1]!);
    }
  });

  it("accepts a SEC1 (BEGIN EC PRIVATE KEY) P-256 key", async () => {
    const sec1 = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "sec1", format: "pem" });
    await writeFile(join(dir, "sec1.key"), sec1);
    await expect(loadPrivateKey(join(dir, "sec1.key"))).resolves.toMatchObject({ asymmetricKeyType: "ec" });
  });

  it("throws KEY_UNREADABLE for garbage, a public key, or a cosign-format key", async () => {
    const cases = {
      "garbage.key": "not a key",
      "pub-as-priv.key": generateKeyPair().publicPem,
      "cosign.key": "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nabc\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
    };
    for (const [name, text] of Object.entries(cases)) {
      await writeFile(join(dir, name), text);
      expect((await rejection(loadPrivateKey(join(dir, name), PASSWORD))).code).toBe("KEY_UNREADABLE");
    }
  });
});

describe("#loadPublicKey", () => {
  it("refuses a private key file rather than deriving its public half", async () => {
    await writeFile(join(dir, "priv-as-pub.pub"), generateKeyPair().privatePem);
    const e = await rejection(loadPublicKey(join(dir, "priv-as-pub.pub")));
    expect(e.code).toBe("KEY_UNREADABLE");
    expectNoSecrets(e);
  });

  it("throws KEY_NOT_P256 for a P-384 public key", async () => {
    const pem = generateKeyPairSync("ec", { namedCurve: "P-384" }).publicKey.export({ type: "spki", format: "pem" });
    await writeFile(join(dir, "p384.pub"), pem);
    expect((await rejection(loadPublicKey(join(dir, "p384.pub")))).code).toBe("KEY_NOT_P256");
  });

  it("throws KEY_UNREADABLE for a corrupt public key and for a missing file", async () => {
    await writeFile(join(dir, "bad.pub"), "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
    expect((await rejection(loadPublicKey(join(dir, "bad.pub")))).code).toBe("KEY_UNREADABLE");
    expect((await rejection(loadPublicKey(join(dir, "nope.pub")))).code).toBe("KEY_UNREADABLE");
  });
});
