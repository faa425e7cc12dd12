import { InvalidArgumentError } from "commander";
import type { Command } from "commander";
import { loadPrivateKey, loadPublicKey, parseDuration } from "../../sign/index.js";
import { signRelease, verifyRelease } from "../../supplychain/index.js";
import type { VerifyReleaseReport } from "../../supplychain/index.js";
import { action } from "../run.js";
import { emit } from "../output.js";
import { openRef, registryFlags } from "../common.js";
import type { RegistryFlags } from "../common.js";

interface VerifyFlags extends RegistryFlags {
  key: string;
  requireLock?: boolean;
  requirePolicy?: boolean;
  maxAge: string;
}

/** A release sequence: a positive integer that fits a JSON number exactly. */
function parseSequence(v: string): number {
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError("must be a positive integer (1, 2, 3, …)");
  }
  return n;
}

/** Renders the verification steps the way an operator reads them in a terminal. */
function verifyText(r: VerifyReleaseReport & { ref: string }): string {
  return [`Verified ${r.ref}`, `digest: ${r.artifact.digest}`, ...r.steps.map((s) => `  ✓ ${s.step}: ${s.detail}`)].join("\n");
}

export function registerSupplyChain(program: Command): void {
  registryFlags(program.command("sign <ref>")
    .description("sign an artifact (and its attached lock and policy bundle) with a cosign-compatible ECDSA signature")
    .requiredOption("--key <file>", "private key (PKCS#8 PEM); AUTONOMY_KEY_PASSWORD decrypts it")
    .option("--no-attachments", "sign only the artifact, not its attached lock and policy bundle")
    .option("--sequence <n>", "release sequence signed into the artifact's signature; nodes never activate a lower one", parseSequence)
    .option("--rollback", "sign an intentional rollback: lets nodes activate this release although they ran a higher sequence"))
    .action(action(async (refIn: string, flags: RegistryFlags & { key: string; attachments: boolean; sequence?: number; rollback?: boolean }) => {
      const key = await loadPrivateKey(flags.key, process.env.AUTONOMY_KEY_PASSWORD);
      const { repo, ref, target } = openRef(refIn, flags);
      const signed = await signRelease(repo, ref, target, {
        key, now: new Date(), attachments: flags.attachments,
        ...(flags.sequence !== undefined ? { sequence: flags.sequence } : {}),
        ...(flags.rollback ? { rollback: true } : {}),
      });
      emit({ ok: true, ref: refIn, signed }, flags, (r) => r.signed.map((s) => `signed ${s.what} ${s.subject}\n  signature ${s.signature} at ${s.signedAt}`).join("\n"));
    }));

  registryFlags(program.command("verify <ref>")
    .description("verify an artifact fail-closed: signatures, every digest down the tree, lock fingerprint, bundle digest, freshness (exit 4 on failure)")
    .requiredOption("--key <file>", "trusted public key (SPKI PEM); verification is fully offline against it")
    .option("--require-lock", "fail unless a signed lock is attached and pins this artifact")
    .option("--require-policy", "fail unless a signed policy bundle is attached and matches the lock")
    .option("--max-age <duration>", "oldest acceptable signature (e.g. 8760h, 30d, 90m)", "8760h"))
    .action(action(async (refIn: string, flags: VerifyFlags) => {
      const key = await loadPublicKey(flags.key);
      const maxAgeMs = parseDuration(flags.maxAge);
      const { repo, ref, target } = openRef(refIn, flags);
      const report = await verifyRelease(repo, target, {
        key, maxAgeMs, now: new Date(),
        requireLock: flags.requireLock ?? false,
        requirePolicy: flags.requirePolicy ?? false,
        ...(ref.tag !== undefined ? { tag: ref.tag } : {}),
      });
      emit({ ok: true, ref: refIn, ...report }, flags, verifyText);
    }));
}
