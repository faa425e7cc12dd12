import type { Command } from "commander";
import { signRuntimeManifest } from "../../edge/index.js";
import { UsageError, writeFileAtomic } from "../../lib/index.js";
import { loadPrivateKey } from "../../sign/index.js";
import { emit } from "../output.js";
import { action } from "../run.js";

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/** `autonomy runtime manifest sign`: the operator side of `edged runtime stage` (docs/bootstrap.md). */
export function registerRuntimeManifest(runtime: Command): void {
  const manifest = runtime.command("manifest").description("signed runtime manifests: what `edged runtime stage` verifies and a reconstruction reinstalls");
  manifest.command("sign")
    .description("sign every file under DIR (path, size, sha256, mode) as a DSSE envelope of type application/vnd.autonomyops.runtime-manifest+json")
    .requiredOption("--from <dir>", "the runtime directory (regular files and directories only)")
    .requiredOption("--key <file>", "release private key (PKCS#8 PEM), repeatable; AUTONOMY_KEY_PASSWORD decrypts it", collect, [])
    .requiredOption("--out <file>", "where to write the envelope (runtime.dsse.json)")
    .option("--sequence <n>", "orders runtimes: a node refuses to stage a lower one than it has staged (default: the signing time in ms)")
    .option("--json", "machine-readable output")
    .action(action(async (flags: { from: string; key: string[]; out: string; sequence?: string; json?: boolean }) => {
      const keys = await Promise.all(flags.key.map((k) => loadPrivateKey(k, process.env.AUTONOMY_KEY_PASSWORD)));
      const sequence = flags.sequence === undefined ? undefined : Number(flags.sequence);
      if (sequence !== undefined && (!/^[0-9]+$/.test(flags.sequence ?? "") || !Number.isSafeInteger(sequence) || sequence < 1)) throw new UsageError(`--sequence must be a positive integer, got ${JSON.stringify(flags.sequence)}`, "pass a number higher than the last runtime you shipped, e.g. --sequence 42");
      const { envelope, manifest: m } = await signRuntimeManifest(flags.from, keys, sequence === undefined ? {} : { sequence });
      await writeFileAtomic(flags.out, `${JSON.stringify(envelope, null, 2)}\n`);
      emit({ ok: true, out: flags.out, sequence: m.sequence, files: m.files }, flags, (r) => `signed ${r.files.length} file(s), sequence ${r.sequence} → ${r.out}`);
    }));
}
