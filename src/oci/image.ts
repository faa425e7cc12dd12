import { basename } from "node:path";
import { tarGz } from "../archive/index.js";
import type { TarEntry } from "../archive/index.js";
import { storeManifest } from "./artifact.js";
import type { PushedArtifact } from "./artifact.js";
import { MediaTypes } from "./types.js";
import type { ImageManifest, OciRepository, ProgressFn } from "./types.js";
import { UsageError, readInput, sha256Digest } from "../lib/index.js";

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
 * it as an ordinary image. Byte-identical output for identical input on any
 * host, time zone and umask: the layer is written by the archive domain's
 * deterministic tar+gzip writer (mtime 0, owner 0/0, modes 0o755/0o644,
 * pinned gzip header).
 */
export async function buildImage(repo: OciRepository, files: readonly string[], opts: BuildImageOptions = {}): Promise<PushedArtifact> {
  const { tar, gz: layer } = tarGz(await layerEntries(files, opts.prefix ?? "agent"));
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

/**
 * The layer's entries: the `prefix/` directory, then each file by name (sorted,
 * so argument and readdir order never change the digest). A file keeps only
 * whether it is executable (0o755) or not (0o644): the layer does not depend on
 * the umask or the owner of the files it was built from.
 */
async function layerEntries(files: readonly string[], prefix: string): Promise<TarEntry[]> {
  const byName = new Map<string, string>();
  for (const f of files) {
    const name = basename(f);
    if (byName.has(name)) throw new UsageError(`two files are named ${name}`, "image files are flattened into one folder; rename one of them");
    byName.set(name, f);
  }
  const entries: TarEntry[] = [{ type: "directory", name: prefix }];
  for (const name of [...byName.keys()].sort()) {
    const path = byName.get(name)!;
    const { content, mode } = await readInput(path, "image file");
    entries.push({ name: `${prefix}/${name}`, content, mode: (mode & 0o111) !== 0 ? 0o755 : 0o644 });
  }
  return entries;
}
