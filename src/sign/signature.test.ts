import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import type { KeyObject } from "node:crypto";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { UsageError } from "../lib/index.js";
import { VerificationError } from "./errors.js";
import { generateKeyPair } from "./keys.js";
import { checkFreshness, parseDuration, signPayload, verifyPayloadSignature } from "./signature.js";
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

describe("#checkFreshness", () => {
  const now = new Date("2025-06-01T12:00:00Z");
  const code = (signedAt: string | undefined, maxAgeMs?: number) => {
    const e = caught(() => checkFreshness(signedAt, { now, maxAgeMs }));
    expect(e).toBeInstanceOf(VerificationError);
    return (e as VerificationError).code;
  };

  it("returns the signed-at time when it is fresh", () => {
    expect(checkFreshness("2025-06-01T11:00:00Z", { now, maxAgeMs: 3_600_000 })).toEqual(new Date("2025-06-01T11:00:00Z"));
    expect(checkFreshness("2025-06-01T13:00:00.5+02:00", { now })).toEqual(new Date("2025-06-01T11:00:00.500Z"));
    expect(checkFreshness("1990-01-01T00:00:00Z", { now })).toEqual(new Date("1990-01-01T00:00:00Z"));
  });

  it("allows up to the skew into the future (default 5 minutes)", () => {
    expect(() => checkFreshness("2025-06-01T12:05:00Z", { now })).not.toThrow();
    expect(code("2025-06-01T12:05:01Z")).toBe("SIGNATURE_TIME_INVALID");
    expect(() => checkFreshness("2025-06-01T12:05:01Z", { now, skewMs: 10 * 60_000 })).not.toThrow();
  });

  it("throws SIGNATURE_STALE past the maximum age, with exit code 4", () => {
    expect(code("2025-06-01T10:59:59Z", 3_600_000)).toBe("SIGNATURE_STALE");
    const e = caught(() => checkFreshness("2025-05-01T12:00:00Z", { now, maxAgeMs: 1 })) as VerificationError;
    expect(e.exitCode).toBe(4);
    expect(e.details).toMatchObject({ maxAgeMs: 1, ageMs: 31 * 86_400_000 });
  });

  it.each([
    undefined,
    "",
    "yesterday",
    "2025-06-01",
    "2025-06-01 12:00:00Z",
    "2025-02-30T00:00:00Z",
    "2025-13-01T00:00:00Z",
    "2025-06-01T24:00:00Z",
    "2025-06-01T12:60:00Z",
    "2025-06-01T12:00:60Z",
    "2025-06-01T12:00:00+24:00",
    "2025-06-01T12:00:00",
    "1748779200",
  ])("throws SIGNATURE_TIME_INVALID for %j", (s) => {
    expect(code(s)).toBe("SIGNATURE_TIME_INVALID");
  });

  it("accepts a leap day and year 0000 correctly", () => {
    expect(checkFreshness("2024-02-29T00:00:00Z", { now }).toISOString()).toBe("2024-02-29T00:00:00.000Z");
    expect(checkFreshness("0000-02-29T00:00:00Z", { now }).getUTCFullYear()).toBe(0);
    expect(code("2023-02-29T00:00:00Z")).toBe("SIGNATURE_TIME_INVALID");
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
