import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import type { KeyObject } from "node:crypto";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { UsageError } from "../lib/index.js";
import { generateKeyPair } from "./keys.js";
import { parseDuration, signPayload, verifyPayloadSignature } from "./signature.js";
import { caught } from "../../test/helpers/caught.js";

let priv: KeyObject;
let pub: KeyObject;
let otherPub: KeyObject;
beforeAll(() => {
  const pair = generateKeyPair();
  priv = createPrivateKey(pair.privatePem);
  pub = createPublicKey(pair.publicPem);
  otherPub = createPublicKey(generateKeyPair().publicPem);
});

const payload = Buffer.from('{"critical":{}}');


describe("#signPayload / #verifyPayloadSignature", () => {
  it("produces a base64 DER ECDSA signature that verifies", () => {
    const sig = signPayload(priv, payload);
    expect(Buffer.from(sig, "base64")[0]).toBe(0x30); // DER SEQUENCE
    expect(verifyPayloadSignature(pub, payload, sig)).toBe(true);
  });

  describe("when anything differs", () => {
    it("returns false for another key, a changed payload or a changed signature", () => {
      const sig = signPayload(priv, payload);
      expect(verifyPayloadSignature(otherPub, payload, sig)).toBe(false);
      expect(verifyPayloadSignature(pub, Buffer.from('{"critical":{} }'), sig)).toBe(false);
      const flipped = Buffer.from(sig, "base64");
      flipped[flipped.length - 1]! ^= 1;
      expect(verifyPayloadSignature(pub, payload, flipped.toString("base64"))).toBe(false);
    });

    it("returns false for non-canonical base64 that Buffer would silently accept", () => {
      const sig = signPayload(priv, payload);
      // DER ECDSA signatures are 70-72 bytes, so the base64 may or may not end in padding.
      const badPadding = sig.endsWith("=") ? sig.replace(/=+$/, "") : `${sig}=`;
      for (const bad of [` ${sig}`, `${sig}\n`, badPadding, `${sig}!`, `${sig.slice(0, -4)}-_${sig.slice(-2)}`, ""]) {
        expect(verifyPayloadSignature(pub, payload, bad)).toBe(false);
      }
    });
  });

  it("never throws on arbitrary payloads, signatures or keys", () => {
    const ed = generateKeyPairSync("ed25519").publicKey;
    const arbSig = fc.oneof(
      fc.string(),
      fc.uint8Array().map((b) => Buffer.from(b).toString("base64")),
      fc.anything() as fc.Arbitrary<string>,
    );
    const arbKey = fc.constantFrom<unknown>(pub, ed, priv, null, "pem", {}) as fc.Arbitrary<KeyObject>;
    const arbPayload = fc.oneof(fc.uint8Array(), fc.anything() as fc.Arbitrary<Uint8Array>);
    fc.assert(
      fc.property(arbKey, arbPayload, arbSig, (key, p, sig) => {
        expect(typeof verifyPayloadSignature(key, p, sig)).toBe("boolean");
      }),
      { numRuns: 2000 },
    );
  });
});

describe("#parseDuration", () => {
  it.each([
    ["8760h", 8760 * 3_600_000],
    ["30m", 1_800_000],
    ["90s", 90_000],
    ["7d", 7 * 86_400_000],
    ["1h30m", 5_400_000],
    ["1.5h", 5_400_000],
    [".5s", 500],
    ["0.3s", 300],
    ["250ms", 250],
    ["1500us", 1.5],
    ["2µs", 0.002],
    ["1ns", 0.000001],
    ["1d2h3m4s5ms", 86_400_000 + 7_200_000 + 180_000 + 4_000 + 5],
    ["0", 0],
    ["0s", 0],
  ])("parses %s", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(["", "h", "10", "-1h", "+1h", "1w", "1y", "1 h", "1h ", "1H", "1.2.3s", "1e3s", "Infinityh", "1hh"])(
    "throws a UsageError for %j",
    (text) => {
      expect(caught(() => parseDuration(text))).toBeInstanceOf(UsageError);
    },
  );

  it("throws a UsageError for a duration beyond safe integers", () => {
    expect(caught(() => parseDuration(`${"9".repeat(30)}h`))).toBeInstanceOf(UsageError);
  });
});
