import type { ReleasePredicate } from "../../src/supplychain/index.js";

/** A fake sha256 digest of one repeated hex character, for hand-written predicates. */
export const fakeDigest = (c: string): string => `sha256:${c.repeat(64)}`;

/** A well-formed release predicate with made-up digests, for tests of the statement itself. */
export function samplePredicate(sequence: number): ReleasePredicate {
  return {
    sequence, channel: "stable", repository: "registry.example/team/agent",
    image: { digest: fakeDigest("a"), mediaType: "application/vnd.oci.image.manifest.v1+json" },
    lock: { digest: fakeDigest("b"), size: 812, behavioral_fingerprint: `blake3:${"c".repeat(64)}` },
    policy_bundle: { digest: fakeDigest("e"), size: 4096, name: "strict", version: "2.0.0" },
    issued_at: "2026-12-05T10:00:00Z", expires_at: "2027-01-04T10:00:00Z",
  };
}
