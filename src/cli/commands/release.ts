import { InvalidArgumentError } from "commander";
import type { Command } from "commander";
import { UsageError } from "../../lib/index.js";
import { isDigest, openRepository, parseReference, referenceTarget } from "../../oci/index.js";
import type { Reference } from "../../oci/index.js";
import { loadPrivateKey, parseDuration } from "../../sign/index.js";
import { DEFAULT_CHANNEL, releaseRepository, rollbackRelease } from "../../supplychain/index.js";
import type { RollbackResult } from "../../supplychain/index.js";
import { action } from "../run.js";
import { emit } from "../output.js";
import { registryFlags, repositoryOptions } from "../common.js";
import type { RegistryFlags } from "../common.js";

interface RollbackFlags extends RegistryFlags {
  to: string;
  toSequence?: number;
  sequence: number;
  key: string[];
  channel: string;
  expiresIn?: string;
  repository?: string;
}

function parseSequence(v: string): number {
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError("must be a positive integer (1, 2, 3, …)");
  return n;
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/** `--to` is a reference, or a bare digest in the target's repository. */
function olderRef(to: string, target: Reference): Reference {
  if (!isDigest(to)) return parseReference(to);
  const { tag: _tag, ...rest } = target;
  return { ...rest, digest: to };
}

function rollbackText(r: RollbackResult & { target: string }): string {
  const o = r.older.statement.predicate;
  const n = r.signed.statement.predicate;
  return [
    `Rolled back ${r.target} as a new release`,
    `  content of sequence ${o.sequence}: image ${r.older.artifact.digest}, lock ${o.lock.digest}, policy ${o.policy_bundle.name}@${o.policy_bundle.version} ${o.policy_bundle.digest}`,
    ...(r.replaced ? [`  replaces sequence ${r.replaced.sequence} (${r.replaced.digest})`] : []),
    `  new statement ${r.signed.statement.digest}: sequence ${n.sequence}, channel ${n.channel}, expires ${n.expires_at}`,
    "nodes accept it as an ordinary upgrade (`autonomy runtime activate`); the old statement stays refused",
  ].join("\n");
}

/** `autonomy release …`: release management beyond signing one release (rollback as a new release). */
export function registerRelease(program: Command): Command {
  const release = program.command("release").description("manage releases: publish, list and show them on a control plane; roll back as a new release with a higher sequence");
  registryFlags(release.command("rollback <target>")
    .description("publish an older release's exact content (image, lock, policy bundle, as ONE verified statement names them: --to-sequence picks it when the image carries several) as a NEW release under a higher sequence at TARGET (a tag, moved to the older image); nodes accept it as an upgrade, while the old statement itself stays refused")
    .requiredOption("--to <ref-or-digest>", "the older release: a reference, or a digest in TARGET's repository")
    .option("--to-sequence <n>", "the older statement to restore (its lock and bundle come back); required when the older image carries statements at several sequences (refused as ambiguous, listing them)", parseSequence)
    .requiredOption("--sequence <n>", "the new sequence: above the older release's and the target's current one", parseSequence)
    .option("--key <file>", "release private key (PKCS#8 PEM), repeatable; AUTONOMY_KEY_PASSWORD decrypts it; its public half verifies the older release", collect, [])
    .option("--channel <name>", "release channel", DEFAULT_CHANNEL)
    .option("--expires-in <duration>", "validity of the new statement (e.g. 90d, 720h; default: `autonomy sign`'s)")
    .option("--repository <host/path>", "signed identity (default: TARGET's repository; required for oci: refs)"))
    .action(action(async (targetIn: string, flags: RollbackFlags) => {
      if (flags.key.length === 0) throw new UsageError("no --key given", "pass --key FILE (the release key; repeat it for several)");
      const keys = await Promise.all(flags.key.map((k) => loadPrivateKey(k, process.env.AUTONOMY_KEY_PASSWORD)));
      const expiresInMs = flags.expiresIn === undefined ? undefined : parseDuration(flags.expiresIn);
      if (expiresInMs !== undefined && expiresInMs <= 0) throw new UsageError("--expires-in must be positive", "e.g. --expires-in 90d");
      const targetRef = parseReference(targetIn);
      const repository = flags.repository ?? releaseRepository(targetRef);
      if (repository === undefined) throw new UsageError("an oci: layout reference does not name the release repository (the signed identity)", "pass --repository HOST/PATH, the repository nodes follow");
      const older = olderRef(flags.to, targetRef);
      const opts = repositoryOptions(flags);
      const r = await rollbackRelease({
        older: { repo: openRepository(older, opts), target: referenceTarget(older) },
        target: { repo: openRepository(targetRef, opts), ref: targetRef },
        keys, sequence: flags.sequence, repository,
        ...(flags.toSequence !== undefined ? { toSequence: flags.toSequence } : {}), channel: flags.channel, now: new Date(),
        ...(expiresInMs !== undefined ? { expiresInMs } : {}),
        onProgress: (line) => process.stderr.write(`${line}\n`),
      });
      emit({ ok: true, target: targetIn, older: { digest: r.older.artifact.digest, statement: r.older.statement.digest, sequence: r.older.statement.predicate.sequence }, replaced: r.replaced ?? null, statement: r.signed.statement }, flags,
        () => rollbackText({ ...r, target: targetIn }));
    }));
  return release;
}
