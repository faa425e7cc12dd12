import { OciError } from "./errors.js";
import { parseManifest, childDescriptors } from "./manifest.js";
import { listReferrers, readReferrerSources } from "./referrers.js";
import type { Referrer } from "./referrers.js";
import { publishReferrer } from "./attach.js";
import type { OciRepository, ProgressFn } from "./types.js";
import { isDigest } from "./reference.js";

export interface CopyOptions {
  /** Also copy everything that refers to the artifact (locks, bundles, signatures), recursively. */
  referrers?: boolean;
  /**
   * Skip (and report in `skippedReferrers`) referrers that cannot be listed,
   * read or copied instead of failing: for copying an untrusted store whose
   * trust was checked elsewhere (activation copies a verified release; anyone
   * with push rights can add a broken referrer beside it).
   */
  tolerateBrokenReferrers?: boolean;
  onProgress?: ProgressFn;
}

export interface CopyResult {
  digest: string;
  manifests: number;
  blobs: number;
  bytes: number;
  referrers: number;
  /** With `tolerateBrokenReferrers`: what was left out, and why. */
  skippedReferrers: { digest: string; reason: string }[];
}

/** Hard stop for runaway graphs (an index that points back at itself, hostile fan-out). */
const MAX_GRAPH_NODES = 10_000;

/** State of one copy: what was visited, what was moved, progress so far. */
interface CopyRun {
  src: OciRepository;
  dst: OciRepository;
  result: CopyResult;
  visited: Set<string>;
  /** Bytes of blobs discovered so far, and of those handled; the total grows as the graph is walked. */
  progress: { total: number; done: number };
  onProgress: ProgressFn | undefined;
  tolerate: boolean;
}

/**
 * Copies a manifest graph byte for byte, so every digest is preserved, then
 * (optionally) its referrers, re-published the canonical way on the destination.
 */
export async function copyArtifact(src: OciRepository, srcTarget: string, dst: OciRepository, dstTag: string | undefined, opts: CopyOptions = {}): Promise<CopyResult> {
  const root = await src.getManifest(srcTarget);
  const run: CopyRun = {
    src, dst,
    result: { digest: root.digest, manifests: 0, blobs: 0, bytes: 0, referrers: 0, skippedReferrers: [] },
    visited: new Set(),
    progress: { total: 0, done: 0 },
    onProgress: opts.onProgress,
    tolerate: opts.tolerateBrokenReferrers ?? false,
  };
  await copyGraph(run, root.digest, false);
  await dst.putManifest(root.bytes, root.mediaType, dstTag !== undefined && !isDigest(dstTag) ? dstTag : undefined);
  if (opts.referrers) await copyReferrers(run, root.digest, dstTag);
  return run.result;
}

/** Copies the blobs and child manifests under `digest`; stores the manifest itself only when `storeSelf` (roots and referrers are stored by the caller). */
async function copyGraph(run: CopyRun, digest: string, storeSelf: boolean): Promise<void> {
  if (run.visited.has(digest)) return;
  run.visited.add(digest);
  if (run.visited.size > MAX_GRAPH_NODES) {
    throw new OciError("OCI_MANIFEST_INVALID", `artifact graph in ${run.src.location} exceeds ${MAX_GRAPH_NODES} manifests`, "the artifact is malformed or hostile; do not copy it");
  }
  const m = await run.src.getManifest(digest);
  const parsed = parseManifest(m.bytes, m.mediaType);
  const children = childDescriptors(parsed);
  if (parsed.kind === "index") {
    for (const child of children) await copyGraph(run, child.digest, true);
  } else {
    run.progress.total += children.reduce((n, d) => n + d.size, 0);
    for (const child of children) await copyBlob(run, child.digest, child.size);
  }
  if (storeSelf) await run.dst.putManifest(m.bytes, m.mediaType);
  run.result.manifests += 1;
}

async function copyBlob(run: CopyRun, digest: string, size: number): Promise<void> {
  if (!(await run.dst.hasBlob(digest))) {
    if (run.dst.putBlobFrom) {
      // Streamed (an image layout destination): memory is one chunk, whatever the layer's size.
      await run.dst.putBlobFrom(digest, size, run.src.blobChunks(digest, { expectedSize: size }));
    } else {
      await run.dst.putBlob(await run.src.getBlob(digest, { expectedSize: size }));
    }
    run.result.blobs += 1;
    run.result.bytes += size;
  }
  run.progress.done += size;
  run.onProgress?.(run.progress.done, run.progress.total);
}

async function copyReferrers(run: CopyRun, subject: string, subjectTag: string | undefined): Promise<void> {
  for (const ref of await referrersOf(run, subject)) {
    if (run.visited.has(ref.digest)) continue;
    try {
      await copyGraph(run, ref.digest, false);
      const m = await run.src.getManifest(ref.digest);
      await publishReferrer(run.dst, m.bytes, m.mediaType, subject, subjectTag);
    } catch (e) {
      if (!(run.tolerate && e instanceof OciError)) throw e;
      run.result.skippedReferrers.push({ digest: ref.digest, reason: `${e.code}: ${e.message}` });
      continue;
    }
    run.result.referrers += 1;
    await copyReferrers(run, ref.digest, undefined);
  }
}

async function referrersOf(run: CopyRun, subject: string): Promise<Referrer[]> {
  if (!run.tolerate) return listReferrers(run.src, subject);
  const { found, problems } = await readReferrerSources(run.src, subject);
  for (const p of problems) run.result.skippedReferrers.push({ digest: `(${p.source} of ${subject})`, reason: p.reason });
  return found;
}
