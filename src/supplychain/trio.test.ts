import { describe, expect, it } from "vitest";
import { generateKeyPairSync } from "node:crypto";
import { openStatement, signRollbackTrio, trustedKeys } from "./index.js";
import type { ReleaseContent } from "./index.js";

const content = (c: string): ReleaseContent => ({
  image: { digest: `sha256:${c.repeat(64)}`, mediaType: "application/vnd.oci.image.manifest.v1+json" },
  lock: { digest: `sha256:${"b".repeat(64)}`, size: 10, behavioral_fingerprint: `blake3:${c.repeat(64)}` },
  policy_bundle: { digest: `sha256:${"e".repeat(64)}`, size: 20, name: "p", version: c },
});

describe("signRollbackTrio", () => {
  it("signs base n, candidate n+1 and rollback n+2 binding exactly the base's content, each verifiable with the release key", () => {
    const k = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const trio = signRollbackTrio({ base: content("1"), candidate: content("2"), keys: [k.privateKey], repository: "registry.example/a", baseSequence: 4, now: new Date("2026-12-05T10:00:00Z") });
    const trusted = trustedKeys([k.publicKey]);
    const opened = [trio.base, trio.candidate, trio.rollback].map((s) => openStatement(s.envelope, trusted, 1));
    expect(opened.map((o) => o.predicate.sequence)).toEqual([4, 5, 6]);
    expect(opened.map((o) => o.digest)).toEqual([trio.base.digest, trio.candidate.digest, trio.rollback.digest]);
    const { image, lock, policy_bundle } = opened[2]!.predicate;
    expect({ image, lock, policy_bundle }).toEqual(content("1"));
    expect(opened[1]!.predicate.image).toEqual(content("2").image);
    expect(opened.every((o) => o.predicate.channel === "stable" && o.predicate.repository === "registry.example/a")).toBe(true);
    // Another statement than the base's own: a node that refused the base's sequence still takes the rollback.
    expect(trio.rollback.digest).not.toBe(trio.base.digest);
  });
});
