import { InvalidArgumentError } from "commander";
import type { Command } from "commander";
import { UsageError, readInputFile, terminalSafe } from "../../lib/index.js";
import { loadPrivateKey, loadPublicKey, parseDuration } from "../../sign/index.js";
import { compileBundle } from "../../policy/index.js";
import { releaseRepository, signRelease, trustedKeys, verifyRelease, DEFAULT_CHANNEL, DEFAULT_EXPIRES_IN_MS } from "../../supplychain/index.js";
import type { SignReleaseResult, VerifyReleaseReport } from "../../supplychain/index.js";
import type { Reference } from "../../oci/index.js";
import { action } from "../run.js";
import { emit } from "../output.js";
import { openRef, registryFlags } from "../common.js";
import type { RegistryFlags } from "../common.js";

interface SignFlags extends RegistryFlags {
  key?: string[];
  sequence: number;
  lock: string;
  policyBundle: string;
  channel: string;
  expiresIn: string;
  repository?: string;
}

interface VerifyFlags extends RegistryFlags {
  key?: string[];
  threshold: number;
  channel: string;
  repository?: string;
}

/** A positive integer that fits a JSON number exactly (sequence, threshold). */
function parsePositive(v: string): number {
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError("must be a positive integer (1, 2, 3, …)");
  }
  return n;
}

function collect(v: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), v];
}

/**
 * The signed identity: `--repository`, else REF's own `host/path`. An `oci:`
 * layout path cannot say where the release is published, so it needs the flag.
 */
function repositoryFor(ref: Reference, flag: string | undefined): string {
  const r = flag ?? releaseRepository(ref);
  if (r === undefined) {
    throw new UsageError("an oci: layout reference does not name the release repository (the signed identity)",
      "pass --repository HOST/PATH: the registry repository the release is published to and nodes pull from, e.g. --repository registry.example.com/prod/agent");
  }
  return r;
}

function keysRequired(keys: string[] | undefined): string[] {
  if (keys === undefined || keys.length === 0) throw new UsageError("no --key given", "pass --key FILE (repeat it for several keys)");
  return keys;
}

function signText(r: SignReleaseResult & { ref: string }): string {
  const p = r.statement.predicate;
  return [
    r.reused ? `Already signed: ${r.ref} (this release's statement at sequence ${p.sequence} was published before and is reused; nothing new was published)` : `Signed release ${r.ref}`,
    `digest: ${r.digest}`,
    `  statement ${r.statement.digest} (referrer ${r.statement.referrer})`,
    `  sequence ${p.sequence}, channel ${p.channel}, repository ${p.repository}, expires ${p.expires_at}`,
    `  lock ${r.lock.digest}${r.lock.attached ? " (attached now)" : ""}`,
    `  policy bundle ${p.policy_bundle.name}@${p.policy_bundle.version} ${r.policy.digest}${r.policy.attached ? " (attached now)" : ""}`,
    `  ${r.signatures.length} simple-signing signature(s) for interoperability`,
    ...r.unnamed.map((u) => `  ! not signed: ${u.artifactType} ${u.blob} is attached but was not named`),
  ].join("\n");
}

/** Renders the verification steps, skipped candidates and ignored attachments the way an operator reads them. */
function verifyText(r: VerifyReleaseReport & { ref: string }): string {
  return [
    `Verified ${r.ref}`,
    `digest: ${r.artifact.digest}`,
    ...r.steps.map((s) => `  ✓ ${s.step}: ${terminalSafe(s.detail)}`),
    ...(r.skipped.length > 0 ? ["skipped statement candidates:", ...r.skipped.map((s) => `  - ${terminalSafe(s.candidate)} (${terminalSafe(s.source)}): ${terminalSafe(s.reason)}`)] : []),
    ...(r.ignored.length > 0 ? ["ignored attachments (not named by the statement):", ...r.ignored.map((i) => `  - ${terminalSafe(i.artifactType)} ${terminalSafe(i.blob ?? i.manifest)}: ${terminalSafe(i.reason)}`)] : []),
  ].join("\n");
}

export function registerSupplyChain(program: Command): void {
  registryFlags(program.command("sign <ref>")
    .description("sign a release: the image REF resolves to (once), and exactly the named lock and policy bundle, in one release statement (DSSE, in-toto) plus cosign simple-signing signatures for interoperability")
    .option("--key <file>", "private key (PKCS#8 PEM), repeatable; AUTONOMY_KEY_PASSWORD decrypts it", collect)
    .requiredOption("--sequence <n>", "release sequence; nodes never activate a lower one (a rollback is the older content under a new, higher sequence)", parsePositive)
    .requiredOption("--lock <file>", "the activation lock to sign (attached if not attached yet); it must pin REF's digest and the bundle")
    .requiredOption("--policy-bundle <file>", "the policy bundle (.tar.gz) to sign (attached if not attached yet); its digest must be the one the lock names")
    .option("--channel <name>", "release channel nodes follow", DEFAULT_CHANNEL)
    .option("--expires-in <duration>", "statement validity (e.g. 90d, 720h); nodes refuse it afterwards", `${DEFAULT_EXPIRES_IN_MS / 86_400_000}d`)
    .option("--repository <host/path>", "signed identity: the repository nodes pull from (default: REF's repository; required for oci: refs)")
    .addHelpText("after", [
      "",
      "REF is resolved once; its digest is printed and signed. The lock must pin that digest and name the bundle's digest.",
      "Lock and bundle are attached when not attached yet; a lock or bundle attached beside them that you did not name is",
      "reported and never signed. Publishing is refused (TAG_MOVED, exit 4) when REF's tag moves while signing.",
      "Defaults: --channel stable, --expires-in 90d. A rollback is a new release: the older content under a higher --sequence.",
      "Progress goes to stderr; with --json the result is the only thing on stdout.",
    ].join("\n")))
    .action(action(async (refIn: string, flags: SignFlags) => {
      const keyFiles = keysRequired(flags.key);
      const expiresInMs = parseDuration(flags.expiresIn);
      if (expiresInMs <= 0) throw new UsageError("--expires-in must be positive", "e.g. --expires-in 90d");
      const keys = await Promise.all(keyFiles.map((k) => loadPrivateKey(k, process.env.AUTONOMY_KEY_PASSWORD)));
      const lock = await readInputFile(flags.lock, "lock");
      const bundleBytes = await readInputFile(flags.policyBundle, "policy bundle");
      // Loaded as a node loads it (integrity, runtime range, Cedar compile): never sign a release no node can activate.
      const { bundle, engine } = await compileBundle(bundleBytes);
      engine.dispose();
      const { repo, ref } = openRef(refIn, flags);
      const repository = repositoryFor(ref, flags.repository);
      const result = await signRelease(repo, ref, {
        keys, now: new Date(), sequence: flags.sequence, channel: flags.channel, expiresInMs, repository, lock,
        bundle: { bytes: bundleBytes, name: bundle.manifest.name, version: bundle.manifest.policy_bundle_version },
        onProgress: (line) => process.stderr.write(`${line}\n`),
      });
      emit({ ok: true, ref: refIn, ...result }, flags, signText);
    }));

  registryFlags(program.command("verify <ref>")
    .description("verify a release fail-closed against its signed release statement: trusted keys (threshold), channel, repository, expiry, exactly the lock and bundle it names (always required: the former --require-lock and --require-policy are implied), every digest down the tree; lists skipped statements and ignored attachments (exit 4 on failure)")
    .option("--key <file>", "trusted public key (SPKI PEM), repeatable; verification is fully offline against them", collect)
    .option("--threshold <n>", "distinct trusted keys that must have signed the statement", parsePositive, 1)
    .option("--channel <name>", "channel the statement must be for", DEFAULT_CHANNEL)
    .option("--repository <host/path>", "signed identity the statement must name (default: REF's repository; required for oci: refs)")
    .addHelpText("after", [
      "",
      "A lock and a policy bundle are always required (the former --require-lock and --require-policy are implied):",
      "exactly the ones the chosen release statement names, fetched by digest. Statements not valid for the keys, this",
      "image, channel and repository, or expired, are skipped with a reason; of the valid ones the highest sequence wins.",
      "Lock/bundle attachments the statement does not name are listed as ignored. Any failure exits 4.",
    ].join("\n")))
    .action(action(async (refIn: string, flags: VerifyFlags) => {
      const trusted = trustedKeys(await Promise.all(keysRequired(flags.key).map((k) => loadPublicKey(k))));
      if (flags.threshold > trusted.length) throw new UsageError(`--threshold ${flags.threshold} is more than the ${trusted.length} distinct key(s) given`, "pass more --key files or lower --threshold");
      const { repo, ref, target } = openRef(refIn, flags);
      const report = await verifyRelease(repo, target, {
        trusted, threshold: flags.threshold, channel: flags.channel, repository: repositoryFor(ref, flags.repository), now: new Date(),
        ...(ref.tag !== undefined ? { tag: ref.tag } : {}),
      });
      // The bytes are for activation, not for the terminal or a JSON consumer.
      const { lock, policy, statement, ...rest } = report;
      const out = {
        ok: true, ref: refIn, ...rest,
        statement: { digest: statement.digest, keyIds: statement.keyIds, predicate: statement.predicate },
        lock: { blob: lock.blob, size: lock.size, fingerprint: lock.lock.behavioral_fingerprint },
        policy: { blob: policy.blob, size: policy.size },
      };
      emit(out, flags, () => verifyText({ ...report, ref: refIn }));
    }));
}
