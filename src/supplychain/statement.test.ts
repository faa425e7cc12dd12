import { describe, expect, it } from "vitest";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { VerificationError, generateKeyPair, keyIdOf, signEnvelope } from "../sign/index.js";
import { IN_TOTO_PAYLOAD_TYPE, StatementRejected, buildStatement, openStatement, signStatement } from "./statement.js";
import { samplePredicate } from "../../test/helpers/statements.js";

const predicate = samplePredicate(2);
const kp = generateKeyPair();
const priv = createPrivateKey(kp.privatePem);
const pub = createPublicKey(kp.publicPem);
const trusted = [{ keyId: keyIdOf(pub), key: pub }];
const rejected = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    if (e instanceof StatementRejected) return e.reason;
    throw e;
  }
  throw new Error("expected the statement to be rejected");
};
/** Signs arbitrary statement JSON, as a key holder with a buggy or hostile signer could. */
const signed = (doc: unknown) => signEnvelope(IN_TOTO_PAYLOAD_TYPE, Buffer.from(JSON.stringify(doc)), [priv]);
const statementDoc = (): Record<string, unknown> => JSON.parse(buildStatement(predicate).toString()) as Record<string, unknown>;

describe("release statement", () => {
  it("attack duplicate key: a signed statement carrying `sequence` twice (1, then 9) is refused, never read as the last one", () => {
    const good = buildStatement(predicate).toString();
    const dup = good.replace('"sequence":2', '"sequence":1,"sequence":9');
    expect(dup).not.toBe(good);
    const env = signEnvelope(IN_TOTO_PAYLOAD_TYPE, Buffer.from(dup), [priv]);
    expect(rejected(() => openStatement(env, trusted, 1))).toMatch(/^signed payload refused \(duplicate-key at predicate\.sequence\)/);
  });

  it("round-trips: the verified predicate is the signed one, the digest is over the exact bytes", () => {
    const s = signStatement(predicate, [priv]);
    const open = openStatement(s.envelope, trusted, 1);
    expect(open.predicate).toEqual(predicate);
    expect(open.digest).toBe(s.digest);
    expect(open.bytes.equals(s.bytes)).toBe(true);
    expect(Object.keys(JSON.parse(s.bytes.toString()) as object)).toEqual(["_type", "subject", "predicateType", "predicate"]);
  });

  it("refuses to build a statement that expires before it is issued", () => {
    expect(() => buildStatement({ ...predicate, expires_at: predicate.issued_at })).toThrow(/not after issued_at/);
  });

  it.each([
    ["issued_at", "2026-02-30T00:00:00Z"],
    ["expires_at", "2027-02-30T00:00:00Z"],
    ["issued_at", "2026-12-05T24:00:00Z"],
    ["expires_at", "2027-04-31T10:00:00Z"],
  ])("refuses an %s that does not exist (%s: Date.parse would roll it over), when building and when opening", (field, date) => {
    const bad = { ...predicate, [field]: date };
    let built: unknown;
    try {
      buildStatement(bad);
    } catch (e) {
      built = e;
    }
    expect(built).toBeInstanceOf(VerificationError);
    expect(built).toMatchObject({ code: "STATEMENT_INVALID", message: expect.stringContaining(`${field}: not a date that exists`) as unknown });
    const doc = statementDoc();
    const reason = rejected(() => openStatement(signed({ ...doc, predicate: { ...(doc.predicate as object), [field]: date } }), trusted, 1));
    expect(reason).toContain(`predicate.${field}: not a date that exists`);
  });

  it("a signed document that is not a release statement is rejected with the reason", () => {
    expect(rejected(() => openStatement(signed({ ...statementDoc(), extra: 1 }), trusted, 1))).toMatch(/not a release statement/);
    expect(rejected(() => openStatement(signed({ ...statementDoc(), predicateType: "https://slsa.dev/provenance/v1" }), trusted, 1))).toMatch(/predicateType/);
    const p = { ...predicate, sequence: 2 ** 53 };
    expect(rejected(() => openStatement(signed({ ...statementDoc(), predicate: p }), trusted, 1))).toMatch(/sequence/);
  });

  it("subjects must repeat the predicate's digests (generic tools match subjects, we read the predicate)", () => {
    const doc = statementDoc();
    const subject = (doc.subject as { name: string; digest: { sha256: string } }[]).map((s) => (s.name === "policy-bundle.tar.gz" ? { ...s, digest: { sha256: "f".repeat(64) } } : s));
    expect(rejected(() => openStatement(signed({ ...doc, subject }), trusted, 1))).toMatch(/policy-bundle\.tar\.gz/);
  });

  it("an untrusted signer is rejected before the payload is parsed", () => {
    const other = createPrivateKey(generateKeyPair().privatePem);
    expect(rejected(() => openStatement(signStatement(predicate, [other]).envelope, trusted, 1))).toMatch(/^threshold/);
  });
});
