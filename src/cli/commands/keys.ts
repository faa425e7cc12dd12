import type { Command } from "commander";
import { writeKeyPair } from "../../sign/index.js";
import { action } from "../run.js";
import { emit } from "../output.js";

export function registerKeys(program: Command): void {
  const keys = program.command("keys").description("manage signing keys (ECDSA P-256, cosign-compatible)");
  keys.command("generate")
    .description("write PREFIX.key (PKCS#8 PEM, encrypted when AUTONOMY_KEY_PASSWORD is set, mode 0600) and PREFIX.pub (SPKI PEM)")
    .requiredOption("--out <prefix>", "path prefix for the key pair, e.g. ./keys/release")
    .option("--force", "overwrite an existing key pair")
    .option("--json", "machine-readable output")
    .action(action(async (flags: { out: string; force?: boolean; json?: boolean }) => {
      const password = process.env.AUTONOMY_KEY_PASSWORD;
      const written = await writeKeyPair(flags.out, { ...(password ? { password } : {}), force: flags.force ?? false });
      emit({ ok: true, ...written, encrypted: Boolean(password) }, flags,
        (r) => `private key: ${r.privateKeyPath}${r.encrypted ? " (encrypted)" : " (unencrypted: set AUTONOMY_KEY_PASSWORD to encrypt)"}\npublic key:  ${r.publicKeyPath}`);
    }));
}
