import type { Command } from "commander";
import { readInputFile } from "../../lib/index.js";
import { attachFile, buildImage, copyArtifact, listReferrers, pullArtifact, pushArtifact, MediaTypes } from "../../oci/index.js";
import type { CopyResult, PullResult, Referrer } from "../../oci/index.js";
import { basename } from "node:path";
import { action } from "../run.js";
import { emit } from "../output.js";
import { progressBar } from "../progress.js";
import { openRef, registryFlags } from "../common.js";
import type { RegistryFlags } from "../common.js";

interface PushFlags extends RegistryFlags {
  artifactType: string;
  image?: boolean;
  mediaType?: string;
}

export function registerOci(program: Command): void {
  const oci = program.command("oci").description("push, pull, attach, list referrers and copy OCI artifacts (image layouts and registries)");

  registryFlags(oci.command("push <ref> <files...>")
    .description("push files as an OCI artifact (or, with --image, as a runnable single-layer image)")
    .option("--artifact-type <type>", "artifactType of the manifest", "application/vnd.autonomyops.artifact.v1")
    .option("--media-type <type>", "media type of each file layer", MediaTypes.octetStream)
    .option("--image", "pack the files into a tar+gzip layer with a real image config (for container tooling)"))
    .action(action(async (refIn: string, files: string[], flags: PushFlags) => {
      const { repo, ref } = openRef(refIn, flags);
      const bar = progressBar("push", flags.json);
      const tag = ref.tag ?? (ref.digest === undefined ? "latest" : undefined);
      const opts = { ...(tag !== undefined ? { tag } : {}), onProgress: bar.update };
      const pushed = flags.image
        ? await buildImage(repo, files, opts)
        : await pushArtifact(repo, await Promise.all(files.map(async (f) => ({ name: basename(f), data: await readInputFile(f, "file to push"), mediaType: flags.mediaType ?? MediaTypes.octetStream }))), { ...opts, artifactType: flags.artifactType });
      bar.stop();
      emit({ ok: true, ref: refIn, digest: pushed.digest, mediaType: pushed.manifest.mediaType, layers: pushed.manifest.layers.map((l) => ({ digest: l.digest, size: l.size })) },
        flags, (r) => `pushed ${r.ref}\ndigest: ${r.digest}`);
    }));

  registryFlags(oci.command("pull <ref>")
    .description("download an artifact's layers into a directory, verifying every digest")
    .requiredOption("-o, --output <dir>", "directory to write the files into"))
    .action(action(async (refIn: string, flags: RegistryFlags & { output: string }) => {
      const { repo, target } = openRef(refIn, flags);
      const bar = progressBar("pull", flags.json);
      const result: PullResult = await pullArtifact(repo, target, flags.output, bar.update);
      bar.stop();
      emit({ ok: true, ref: refIn, ...result }, flags, (r) => [`pulled ${r.ref}`, `digest: ${r.digest}`, ...r.files.map((f) => `  ${f.digest}  ${f.path}`)].join("\n"));
    }));

  registryFlags(oci.command("attach <subject-ref> <file>")
    .description("attach a file to an artifact as an OCI 1.1 referrer (sidecar tags where the registry lacks the referrers API)")
    .requiredOption("--artifact-type <type>", `e.g. ${MediaTypes.lock} or ${MediaTypes.policyBundle}`))
    .action(action(async (refIn: string, file: string, flags: RegistryFlags & { artifactType: string }) => {
      // The local file first: a wrong path is reported before any registry round trip.
      const data = await readInputFile(file, "file to attach");
      const { repo, ref, target } = openRef(refIn, flags);
      const subject = await repo.resolve(target);
      const pushed = await attachFile(repo, subject, { name: file, data }, { artifactType: flags.artifactType, ...(ref.tag !== undefined ? { subjectTag: ref.tag } : {}) });
      emit({ ok: true, subject: subject.digest, digest: pushed.digest, artifactType: flags.artifactType }, flags,
        (r) => `attached ${basename(file)} to ${r.subject}\nreferrer: ${r.digest}`);
    }));

  registryFlags(oci.command("referrers <ref>")
    .description("list what refers to an artifact (locks, policy bundles, signatures)")
    .option("--artifact-type <type>", "only this artifactType"))
    .action(action(async (refIn: string, flags: RegistryFlags & { artifactType?: string }) => {
      const { repo, target } = openRef(refIn, flags);
      const subject = await repo.resolve(target);
      const referrers: Referrer[] = await listReferrers(repo, subject.digest, flags.artifactType);
      emit({ ok: true, subject: subject.digest, referrers }, flags, (r) =>
        r.referrers.length === 0 ? `no referrers for ${r.subject}` : r.referrers.map((d) => `${d.digest}  ${d.artifactType ?? "-"}  (${d.source})`).join("\n"));
    }));

  registryFlags(oci.command("copy <src-ref> <dst-ref>")
    .description("copy an artifact byte for byte (digests preserved) with its referrers")
    .option("--no-referrers", "copy only the artifact, not locks, bundles and signatures attached to it"))
    .action(action(async (srcIn: string, dstIn: string, flags: RegistryFlags & { referrers: boolean }) => {
      const src = openRef(srcIn, flags);
      const dst = openRef(dstIn, flags);
      const bar = progressBar("copy", flags.json);
      const result: CopyResult = await copyArtifact(src.repo, src.target, dst.repo, dst.ref.tag ?? src.ref.tag, { referrers: flags.referrers, onProgress: bar.update });
      bar.stop();
      emit({ ok: true, src: srcIn, dst: dstIn, ...result }, flags,
        (r) => `copied ${r.src} -> ${r.dst}\ndigest: ${r.digest} (${r.manifests} manifests, ${r.blobs} blobs, ${r.bytes} bytes, ${r.referrers} referrers)`);
    }));
}
