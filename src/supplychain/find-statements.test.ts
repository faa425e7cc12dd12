/**
 * verifyStatementEnvelope: the per-envelope rules of findStatements for a
 * caller that already holds the envelope (the fleet simulator's devices).
 */
import { describe, expect, it } from "vitest";
import { StatementRejected, signStatement, trustedKeys, verifyStatementEnvelope } from "./index.js";
import { fakeDigest, samplePredicate } from "../../test/helpers/statements.js";
import { testKeys } from "../../test/helpers/release.js";

describe("verifyStatementEnvelope", () => {
  const keys = testKeys();
  const other = testKeys();
  const p = samplePredicate(3);
  const bytes = Buffer.from(JSON.stringify(signStatement(p, [keys.privateKey]).envelope));
  const trust = { trusted: trustedKeys([keys.publicKey]), threshold: 1, channel: "stable", repository: p.repository, now: new Date("2026-12-06T00:00:00Z") };

  it("accepts an envelope signed by a trusted key for this image, repository and channel, within its validity", () => {
    const s = verifyStatementEnvelope(bytes, p.image.digest, trust);
    expect(s.predicate).toMatchObject({ sequence: 3, channel: "stable" });
    expect(s.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it.each([
    ["an untrusted signer", bytes, p.image.digest, { ...trust, trusted: trustedKeys([other.publicKey]) }, /signature|threshold|verif/i],
    ["another image", bytes, fakeDigest("f"), trust, /not this artifact/],
    ["another repository", bytes, p.image.digest, { ...trust, repository: "registry.example/other" }, /repository/],
    ["another channel", bytes, p.image.digest, { ...trust, channel: "beta" }, /channel/],
    ["an expired statement", bytes, p.image.digest, { ...trust, now: new Date("2027-02-01T00:00:00Z") }, /expired/],
    ["bytes that are not an envelope", Buffer.from("{}"), p.image.digest, trust, /not a DSSE envelope/],
  ])("refuses %s (StatementRejected with the reason)", (_what, b, subject, t, reason) => {
    let caught: unknown;
    try {
      verifyStatementEnvelope(b, subject, t);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(StatementRejected);
    expect((caught as StatementRejected).reason).toMatch(reason);
  });

  it("refuses a trust set whose threshold can never be met (STATEMENT_INVALID), before reading the envelope", () => {
    expect(() => verifyStatementEnvelope(bytes, p.image.digest, { ...trust, threshold: 2 })).toThrow(expect.objectContaining({ code: "STATEMENT_INVALID" }));
  });
});
