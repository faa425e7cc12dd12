import { mkdtemp, copyFile, mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { gzipSync } from "node:zlib";
import { create as createTar } from "tar";
import { storeManifest } from "./artifact.js";
import type { PushedArtifact } from "./artifact.js";
import { MediaTypes } from "./types.js";
import type { ImageManifest, OciRepository, ProgressFn } from "./types.js";
import { UsageError, sha256Digest } from "../lib/index.js";

/** Maps Node's arch names onto the OCI platform names. */
const OCI_ARCH: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", riscv64: "riscv64", ia32: "386", ppc64: "ppc64le", s390x: "s390x" };

export interface BuildImageOptions {
  tag?: string;
  /** Directory inside the image that receives the files. */
  prefix?: string;
  entrypoint?: string[];
  onProgress?: ProgressFn;
}

/**
 * Packs files into a runnable single-layer OCI image (real image config with
 * rootfs diff_ids, tar+gzip layer), so container tooling such as skopeo treats
 * it as an ordinary image. Byte-identical output for identical input: the tar
 * is portable with mtime 0 and gzip carries no timestamp.
 */
export async function buildImage(repo: OciRepository, files: readonly string[], opts: BuildImageOptions = {}): Promise<PushedArtifact> {
  const tar = await tarFiles(files, opts.prefix ?? "agent");
  const layer = gzipSync(tar, { level: 9 });
  const config = new TextEncoder().encode(JSON.stringify({
    architecture: OCI_ARCH[process.arch] ?? process.arch,
    os: "linux",
    config: opts.entrypoint ? { Entrypoint: opts.entrypoint } : {},
    rootfs: { type: "layers", diff_ids: [sha256Digest(tar)] },
  }));
  const total = layer.byteLength + config.byteLength;
  const configDigest = await repo.putBlob(config);
  opts.onProgress?.(config.byteLength, total);
  const layerDigest = await repo.putBlob(layer, { onProgress: (d) => opts.onProgress?.(config.byteLength + d, total) });
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.imageManifest,
    config: { mediaType: MediaTypes.imageConfig, digest: configDigest, size: config.byteLength },
    layers: [{ mediaType: MediaTypes.layerTarGzip, digest: layerDigest, size: layer.byteLength }],
  };
  return storeManifest(repo, manifest, opts.tag);
}

async function tarFiles(files: readonly string[], prefix: string): Promise<Buffer> {
  const stage = await mkdtemp(join(tmpdir(), "autonomy-image-"));
  try {
    await mkdir(join(stage, prefix), { recursive: true });
    const names = new Set<string>();
    for (const f of files) {
      const name = basename(f);
      if (names.has(name)) throw new UsageError(`two files are named ${name}`, "image files are flattened into one folder; rename one of them");
      names.add(name);
      await copyFile(f, join(stage, prefix, name));
    }
    const chunks: Buffer[] = [];
    // Explicit sorted entry list: readdir order must not change the layer digest.
    const entries = [prefix, ...[...names].sort().map((n) => `${prefix}/${n}`)];
    const stream = createTar({ cwd: stage, portable: true, mtime: new Date(0), noDirRecurse: true }, entries);
    for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks);
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}
