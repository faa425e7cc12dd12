import { MediaTypes, attachFile, childDescriptors, copyArtifact, parseManifest } from "../oci/index.js";
import type { Descriptor, OciRepository } from "../oci/index.js";
import { NodeError } from "../node/index.js";
import { publishEnvelopeBytes } from "../supplychain/index.js";
import type { VerifyReleaseReport } from "../supplychain/index.js";

/**
 * Default bound on what one activation writes into the node's release store
 * (image blobs + lock + bundle + statement envelope): 4 GiB. The state
 * partition is the node's; a signed image larger than this is refused before
 * anything is copied (raise it with `storeBudgetBytes`).
 */
export const DEFAULT_RELEASE_STORE_BUDGET_BYTES = 4 * 1024 ** 3;

/** What {@link storeVerifiedRelease} wrote. */
export interface StoredRelease {
  bytes: number;
}

/**
 * Keeps the verified release — and nothing else — in the node's own store:
 * the image graph (every blob was just verified against its digest), the
 * lock and the bundle the statement names (the verified bytes, attached
 * afresh), and the statement's envelope (exactly the bytes verification
 * checked the signatures of, re-published alone; a failure to store it fails
 * the activation). Other referrers of the image — unsigned,
 * of any size and number, referrers of referrers — are never copied: anyone
 * with push rights can add them, and the state partition is the node's.
 * The total is checked against `budget` before the first byte is written.
 */
export async function storeVerifiedRelease(src: OciRepository, report: VerifyReleaseReport, store: OciRepository, tag: string, budget: number): Promise<StoredRelease> {
  const root = await src.getManifest(report.artifact.digest);
  const imageBytes = await graphBytes(src, root, 0);
  const envelope = report.statement.envelope.bytes;
  const total = imageBytes + report.lock.bytes.byteLength + report.policy.bytes.byteLength + envelope.byteLength;
  if (total > budget) {
    throw new NodeError("ACTIVATION_TOO_LARGE", `the release ${report.artifact.digest} is ${total} bytes (image, lock, bundle and statement envelope), over the node's release store budget of ${budget} bytes`,
      { details: { digest: report.artifact.digest, bytes: total, budget } });
  }
  const copied = await copyArtifact(src, report.artifact.digest, store, tag, { referrers: false });
  const subject: Descriptor = { mediaType: report.artifact.mediaType, digest: report.artifact.digest, size: root.bytes.byteLength };
  await attachFile(store, subject, { name: "autonomy.lock.json", data: report.lock.bytes }, { artifactType: MediaTypes.lock });
  await attachFile(store, subject, { name: "policy-bundle.tar.gz", data: report.policy.bytes }, { artifactType: MediaTypes.policyBundle });
  await publishEnvelopeBytes(store, subject, envelope);
  return { bytes: copied.bytes + report.lock.bytes.byteLength + report.policy.bytes.byteLength + envelope.byteLength };
}

/** Total size of the blobs under a manifest (recursively for an index), from the descriptors verification just checked. */
async function graphBytes(repo: OciRepository, m: { digest: string; bytes: Uint8Array; mediaType: string }, depth: number): Promise<number> {
  // Verification already walked this graph; the depth bound only guards against a store changing underneath.
  if (depth > 8) throw new NodeError("ACTIVATION_TOO_LARGE", `the image ${m.digest} nests indexes deeper than 8 levels`);
  const parsed = parseManifest(m.bytes, m.mediaType);
  let n = 0;
  for (const d of childDescriptors(parsed)) n += parsed.kind === "index" ? await graphBytes(repo, await repo.getManifest(d.digest), depth + 1) : d.size;
  return n;
}
