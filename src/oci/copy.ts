import { OciError } from "./errors.js";
import { parseManifest, childDescriptors } from "./manifest.js";
import { listReferrers } from "./referrers.js";
import { publishReferrer } from "./attach.js";
import type { OciRepository, ProgressFn } from "./types.js";
import { isDigest } from "./reference.js";

export interface CopyOptions {
  /** Also copy everything that refers to the artifact (locks, bundles, signatures), recursively. */
  referrers?: boolean;
  onProgress?: ProgressFn;
}

export interface CopyResult {
  digest: string;
  manifests: number;
  blobs: number;
  bytes: number;
  referrers: number;
}

/** Hard stop for runaway graphs (an index that points back at itself, hostile fan-out). */
const MAX_GRAPH_NODES = 10_000;

/**
 * Copies a manifest graph byte for byte, so every digest is preserved, then
 * (optionally) its referrers, re-published the canonical way on the destination.
 */
export async function copyArtifact(src: OciRepository, srcTarget: string, dst: OciRepository, dstTag: string | undefined, opts: CopyOptions = {}): Promise<CopyResult> {
  const result: CopyResult = { digest: "", manifests: 0, blobs: 0, bytes: 0, referrers: 0 };
  const visited = new Set<string>();
  const root = await src.getManifest(srcTarget);
  result.digest = root.digest;
  await copyGraph(src, dst, root.digest, result, visited, opts.onProgress);
  await dst.putManifest(root.bytes, root.mediaType, dstTag !== undefined && !isDigest(dstTag) ? dstTag : undefined);
  if (opts.referrers) await copyReferrers(src, dst, root.digest, dstTag, result, visited, opts.onProgress);
  return result;
}

/** Copies the blobs and child manifests under `digest`; stores the manifest itself only when `storeSelf` (roots and referrers are stored by the caller). */
async function copyGraph(src: OciRepository, dst: OciRepository, digest: string, r: CopyResult, visited: Set<string>, onProgress?: ProgressFn, storeSelf = false): Promise<void> {
  if (visited.has(digest)) return;
  visited.add(digest);
  if (visited.size > MAX_GRAPH_NODES) {
    throw new OciError("OCI_MANIFEST_INVALID", `artifact graph in ${src.location} exceeds ${MAX_GRAPH_NODES} manifests`, "the artifact is malformed or hostile; do not copy it");
  }
  const m = await src.getManifest(digest);
  const parsed = parseManifest(m.bytes, m.mediaType);
  for (const child of childDescriptors(parsed)) {
    if (parsed.kind === "index") {
      await copyGraph(src, dst, child.digest, r, visited, onProgress, true);
      continue;
    }
    if (await dst.hasBlob(child.digest)) continue;
    const data = await src.getBlob(child.digest, { expectedSize: child.size });
    await dst.putBlob(data);
    r.blobs += 1;
    r.bytes += data.byteLength;
    onProgress?.(r.bytes, r.bytes);
  }
  if (storeSelf) await dst.putManifest(m.bytes, m.mediaType);
  r.manifests += 1;
}

async function copyReferrers(src: OciRepository, dst: OciRepository, subject: string, subjectTag: string | undefined, r: CopyResult, visited: Set<string>, onProgress?: ProgressFn): Promise<void> {
  for (const ref of await listReferrers(src, subject)) {
    if (visited.has(ref.digest)) continue;
    await copyGraph(src, dst, ref.digest, r, visited, onProgress);
    const m = await src.getManifest(ref.digest);
    await publishReferrer(dst, m.bytes, m.mediaType, subject, subjectTag);
    r.referrers += 1;
    await copyReferrers(src, dst, ref.digest, undefined, r, visited, onProgress);
  }
}
