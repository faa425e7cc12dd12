import { createHash } from "node:crypto";
import type { ReleaseContent } from "../supplychain/index.js";

const hex = (label: string, part: string): string => createHash("sha256").update(`autonomy-fleetsim\n${label}\n${part}`).digest("hex");

/**
 * Release content for a SIMULATED fleet only: digests derived from `label`,
 * naming no image, lock or bundle that exists. Virtual devices verify the
 * signed statement (keys, channel, repository, expiry, sequence) but never
 * fetch what it binds (docs/lab-fleet.md), so a lab can sign real statements
 * over it — with `signRollbackTrio` (src/supplychain) for a rollout with a
 * rollback target — without building images. A real node would refuse it:
 * there is nothing to pull.
 */
export function syntheticReleaseContent(label: string): ReleaseContent {
  return {
    image: { digest: `sha256:${hex(label, "image")}`, mediaType: "application/vnd.oci.image.manifest.v1+json" },
    lock: { digest: `sha256:${hex(label, "lock")}`, size: 512, behavioral_fingerprint: `blake3:${hex(label, "fingerprint")}` },
    policy_bundle: { digest: `sha256:${hex(label, "bundle")}`, size: 4096, name: "fleetsim", version: label.slice(0, 64) || "0" },
  };
}
