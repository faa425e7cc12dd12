import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { ECDH, createPrivateKey, createPublicKey, sign } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { decodeBase64Strict, keyIdOf, preAuthEncoding, signEnvelope, verifyEnvelope } from "./dsse.js";
import type { TrustedKey } from "./dsse.js";
import { generateKeyPair } from "./keys.js";

const TYPE = "application/vnd.in-toto+json";
function pair(): { priv: KeyObject; trusted: TrustedKey } {
  const p = generateKeyPair();
  const pub = createPublicKey(p.publicPem);
  return { priv: createPrivateKey(p.privatePem), trusted: { keyId: keyIdOf(pub), key: pub } };
}
const body = Buffer.from('{"hello":"wörld"}');

describe("DSSE v1", () => {
  it("PAE is the spec's test vector, with byte (not character) lengths", () => {
    expect(preAuthEncoding("http://example.com/HelloWorld", Buffer.from("hello world")).toString()).toBe("DSSEv1 29 http://example.com/HelloWorld 11 hello world");
    expect(preAuthEncoding("t", Buffer.from("é")).toString()).toBe("DSSEv1 1 t 2 é");
  });

  it("a signed envelope verifies and returns exactly the signed bytes", () => {
    const a = pair();
    const r = verifyEnvelope(signEnvelope(TYPE, body, [a.priv]), [a.trusted], 1, TYPE);
    expect(r).toEqual({ ok: true, payload: body, keyIds: [a.trusted.keyId] });
  });

  it("another key, a tampered payload or a changed payloadType do not verify", () => {
    const a = pair();
    const b = pair();
    const env = signEnvelope(TYPE, body, [a.priv]);
    expect(verifyEnvelope(env, [b.trusted], 1, TYPE)).toMatchObject({ ok: false, reason: "threshold" });
    expect(verifyEnvelope({ ...env, payload: Buffer.from('{"hello":"world!"}').toString("base64") }, [a.trusted], 1, TYPE)).toMatchObject({ ok: false, reason: "threshold" });
    // The type is inside PAE: changing it breaks the signature before the type is even compared.
    expect(verifyEnvelope({ ...env, payloadType: "application/json" }, [a.trusted], 1, "application/json")).toMatchObject({ ok: false, reason: "threshold" });
    // Signed with the wrong type: the signature holds but the type is refused.
    expect(verifyEnvelope(signEnvelope("application/json", body, [a.priv]), [a.trusted], 1, TYPE)).toMatchObject({ ok: false, reason: "payload-type" });
  });

  it("the threshold counts unique trusted keys: a repeated signature or a twice-listed key counts once", () => {
    const a = pair();
    const b = pair();
    const one = signEnvelope(TYPE, body, [a.priv]);
    const twice = { ...one, signatures: [one.signatures[0]!, one.signatures[0]!] };
    expect(verifyEnvelope(twice, [a.trusted, a.trusted, b.trusted], 2, TYPE)).toMatchObject({ ok: false, reason: "threshold" });
    const both = signEnvelope(TYPE, body, [a.priv, b.priv]);
    expect(verifyEnvelope(both, [a.trusted, b.trusted], 2, TYPE)).toMatchObject({ ok: true });
  });

  it("the keyid never selects a key: a lying keyid still verifies under the right key, and a right keyid on a bad signature does not", () => {
    const a = pair();
    const env = signEnvelope(TYPE, body, [a.priv]);
    expect(verifyEnvelope({ ...env, signatures: [{ keyid: "deadbeef", sig: env.signatures[0]!.sig }] }, [a.trusted], 1, TYPE)).toMatchObject({ ok: true });
    expect(verifyEnvelope({ ...env, signatures: [{ keyid: a.trusted.keyId, sig: "MEUCIQ==" }] }, [a.trusted], 1, TYPE)).toMatchObject({ ok: false });
  });

  it("P1363 (raw r||s) signatures are refused; URL-safe unpadded base64 is accepted", () => {
    const a = pair();
    const pae = preAuthEncoding(TYPE, body);
    const raw = sign("sha256", pae, { key: a.priv, dsaEncoding: "ieee-p1363" }).toString("base64");
    expect(verifyEnvelope({ payloadType: TYPE, payload: body.toString("base64"), signatures: [{ keyid: "", sig: raw }] }, [a.trusted], 1, TYPE)).toMatchObject({ ok: false });
    const env = signEnvelope(TYPE, body, [a.priv]);
    const url = { payloadType: TYPE, payload: body.toString("base64url"), signatures: [{ keyid: "", sig: Buffer.from(env.signatures[0]!.sig, "base64").toString("base64url") }] };
    expect(verifyEnvelope(url, [a.trusted], 1, TYPE)).toMatchObject({ ok: true, payload: body });
  });

  it("base64 with junk characters is refused, not silently skipped (property)", () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.constantFrom("!", " ", "*", "\n", "."), fc.nat(), (bytes, junk, at) => {
      const s = Buffer.from(bytes).toString("base64");
      const i = at % (s.length + 1);
      expect(decodeBase64Strict(s.slice(0, i) + junk + s.slice(i))).toBeUndefined();
      expect(decodeBase64Strict(s)).toEqual(Buffer.from(bytes));
    }));
  });

  it("attack signature CPU bomb: a 64 KiB envelope of ~2 840 well-formed (r=1, s=1) signatures is refused before any signature is checked", () => {
    const a = pair();
    const sig = Buffer.from([0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]).toString("base64");
    const n = Math.floor((64 * 1024 - 200) / (JSON.stringify({ sig }).length + 1));
    expect(n).toBeGreaterThan(2800);
    const bomb = { payload: Buffer.from(body).toString("base64"), payloadType: TYPE, signatures: Array.from({ length: n }, () => ({ keyid: "", sig })) };
    expect(verifyEnvelope(bomb, [a.trusted], 1, TYPE)).toEqual({ ok: false, reason: "malformed", detail: `${n} signatures, over the bound of 16 (not checked)` });
    // The bound grows with the trusted keys (2 per key), and a genuine signature among 16 still counts.
    const good = signEnvelope(TYPE, body, [a.priv]);
    const padded = { ...good, signatures: [...Array.from({ length: 15 }, () => ({ keyid: "", sig })), good.signatures[0]!] };
    expect(verifyEnvelope(padded, [a.trusted], 1, TYPE)).toMatchObject({ ok: true });
    expect(verifyEnvelope({ ...padded, signatures: [{ keyid: "", sig }, ...padded.signatures] }, [a.trusted], 1, TYPE)).toMatchObject({ ok: false, reason: "malformed" });
  });

  it("attack threshold bypass through key encoding: one P-256 key given compressed and uncompressed has ONE key id, and one signer never meets a threshold of 2", () => {
    const a = pair();
    const compressed = compressedCopy(a.trusted.key);
    expect(compressed.export({ type: "spki", format: "der" }).length).toBeLessThan(a.trusted.key.export({ type: "spki", format: "der" }).length);
    expect(keyIdOf(compressed)).toBe(a.trusted.keyId);
    const env = signEnvelope(TYPE, body, [a.priv]);
    expect(verifyEnvelope(env, [a.trusted, { keyId: keyIdOf(compressed), key: compressed }], 2, TYPE)).toMatchObject({ ok: false, reason: "threshold" });
  });
});

/** The same public key, its point written compressed (SEC1 0x02/0x03 ‖ X) in the SPKI: what `openssl ec -conv_form compressed -pubout` writes. */
function compressedCopy(pub: KeyObject): KeyObject {
  const der = pub.export({ type: "spki", format: "der" });
  const point = ECDH.convertKey(der.subarray(der.length - 65), "prime256v1", undefined, undefined, "compressed") as Buffer;
  const algId = Buffer.from("301306072a8648ce3d020106082a8648ce3d030107", "hex");
  const bits = Buffer.concat([Buffer.from([0x03, point.length + 1, 0x00]), point]);
  const body = Buffer.concat([algId, bits]);
  return createPublicKey({ key: Buffer.concat([Buffer.from([0x30, body.length]), body]), format: "der", type: "spki" });
}
