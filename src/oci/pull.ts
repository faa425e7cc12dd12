import { join } from "node:path";
import { OciError } from "./errors.js";
import { parseManifest } from "./manifest.js";
import type { OciRepository, ProgressFn } from "./types.js";
import { writeStreamAtomic } from "../lib/index.js";

export interface PulledFile {
  path: string;
  digest: string;
  size: number;
  mediaType: string;
}

export interface PullResult {
  digest: string;
  mediaType: string;
  artifactType?: string;
  files: PulledFile[];
}

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$/;

/**
 * Layer file name: the `org.opencontainers.image.title` annotation when it is a
 * plain file name, else the digest hex. A title is attacker-controlled: no
 * separators, no `..`, no leading dot, so nothing lands outside `outDir`.
 */
export function layerFileName(title: string | undefined, digest: string): string {
  if (title !== undefined && SAFE_NAME.test(title) && !title.includes("..")) return title;
  return digest.slice("sha256:".length);
}

/** Downloads every layer of an artifact into `outDir`, verified, written durably. */
export async function pullArtifact(repo: OciRepository, target: string, outDir: string, onProgress?: ProgressFn): Promise<PullResult> {
  const m = await repo.getManifest(target);
  const parsed = parseManifest(m.bytes, m.mediaType);
  if (parsed.kind !== "manifest") {
    throw new OciError("OCI_MEDIA_TYPE_UNKNOWN", `${repo.location} ${target} is an index (${parsed.mediaType}), not a single artifact`, "pull one of its manifests by digest");
  }
  const layers = parsed.value.layers;
  const total = layers.reduce((n, l) => n + l.size, 0);
  const names = new Set<string>();
  const files: PulledFile[] = [];
  let done = 0;
  for (const layer of layers) {
    let name = layerFileName(layer.annotations?.["org.opencontainers.image.title"], layer.digest);
    if (names.has(name)) name = layer.digest.slice("sha256:".length);
    names.add(name);
    const path = join(outDir, name);
    // Streamed to a temp file and renamed only once size and digest matched: one chunk of memory per layer.
    done += await writeStreamAtomic(path, repo.blobChunks(layer.digest, { expectedSize: layer.size, onProgress: (d) => onProgress?.(done + d, total) }));
    files.push({ path, digest: layer.digest, size: layer.size, mediaType: layer.mediaType });
  }
  const result: PullResult = { digest: m.digest, mediaType: m.mediaType, files };
  if (parsed.value.artifactType !== undefined) result.artifactType = parsed.value.artifactType;
  return result;
}
