// Independent check: the reference BLAKE3 tool (b3sum) must agree with computeFingerprint over
// fingerprintPayload for random locks, so a bug in hash-wasm or in our use of it cannot hide.
import { spawnSync } from "node:child_process";
import fc from "fast-check";
import { expect, it } from "vitest";
import { computeFingerprint, createLock, fingerprintPayload } from "../../src/lock/index.js";
import { arbLockOptions } from "../fixtures/lock/arbitraries.js";
import { needs } from "../helpers/needs.js";

function b3sum(payload: string): string {
  const r = spawnSync("b3sum", ["--no-names"], { input: Buffer.from(payload, "utf8") });
  if (r.error) throw r.error;
  expect(r.status, r.stderr.toString()).toBe(0);
  return `blake3:${r.stdout.toString().trim()}`;
}

needs("b3sum").describe("fingerprint vs b3sum", () => {
  it("agrees on random locks, including non-ASCII references", async () => {
    await fc.assert(
      fc.asyncProperty(arbLockOptions, async (opts) => {
        const lock = await createLock(opts);
        expect(b3sum(fingerprintPayload(lock))).toBe(await computeFingerprint(lock));
      }),
      { numRuns: 40 },
    );
  });

  it("agrees on a large payload (more than one BLAKE3 chunk)", async () => {
    const lock = await createLock({
      agentImageRef: `reg.example/${"a".repeat(5000)}:1`,
      agentDigest: `sha256:${"1".repeat(64)}`,
      policyBundleRef: `reg.example/policy-ü-😀:${"b".repeat(3000)}`,
      policyBundleDigest: `sha256:${"2".repeat(64)}`,
    });
    expect(b3sum(fingerprintPayload(lock))).toBe(lock.behavioral_fingerprint);
  });
});
