import type { Command } from "commander";
import { computeFingerprint, createLock, fingerprintPayload, hashInputFile, parseLock, serializeLock, verifyLock } from "../../lock/index.js";
import type { ActivationLock } from "../../lock/index.js";
import { formatReference, parseReference } from "../../oci/index.js";
import { UsageError, sha256Digest, writeFileAtomic, readInputFile } from "../../lib/index.js";
import { basename } from "node:path";
import { action } from "../run.js";
import { emit } from "../output.js";

interface CreateFlags {
  agentImage: string;
  policyBundle: string;
  policyRef?: string;
  prompt?: string;
  toolInputs?: string;
  output: string;
  json?: boolean;
}

/** `lock create`: pins an agent image digest and a policy bundle digest, no network needed. */
async function lockCreate(flags: CreateFlags): Promise<{ path: string; lock: ActivationLock }> {
  const image = parseReference(flags.agentImage);
  if (image.digest === undefined) {
    throw new UsageError(`--agent-image "${flags.agentImage}" has no digest`, "pin the image by digest: REF@sha256:<64 hex> (see `autonomy oci push` output)");
  }
  const bundle = await readInputFile(flags.policyBundle, "policy bundle");
  const lock = await createLock({
    agentImageRef: formatReference({ ...image, digest: undefined }),
    agentDigest: image.digest,
    policyBundleRef: flags.policyRef ?? basename(flags.policyBundle),
    policyBundleDigest: sha256Digest(bundle),
    ...(flags.prompt !== undefined ? { promptHash: await hashInputFile(flags.prompt) } : {}),
    ...(flags.toolInputs !== undefined ? { toolInputsHash: await hashInputFile(flags.toolInputs) } : {}),
  });
  await writeFileAtomic(flags.output, serializeLock(lock));
  return { path: flags.output, lock };
}

export function registerLock(program: Command): void {
  const lock = program.command("lock").description("create, fingerprint and verify activation locks (autonomy.lock.json)");

  lock.command("create")
    .description("create an activation lock binding an agent image digest and a policy bundle")
    .requiredOption("--agent-image <ref@digest>", "agent image reference pinned by digest (REF@sha256:…)")
    .requiredOption("--policy-bundle <file>", "policy bundle file (.tar.gz); its SHA-256 goes into the lock")
    .option("--policy-ref <ref>", "reference recorded for the bundle (default: the file name)")
    .option("--prompt <file>", "prompt file hashed into inputs.prompt_hash")
    .option("--tool-inputs <file>", "tool inputs file hashed into inputs.tool_inputs_hash")
    .option("-o, --output <file>", "where to write the lock", "autonomy.lock.json")
    .option("--json", "machine-readable output")
    .action(action(async (flags: CreateFlags) => {
      const r = await lockCreate(flags);
      emit({ ok: true, path: r.path, behavioral_fingerprint: r.lock.behavioral_fingerprint, lock: r.lock }, flags,
        (x) => `wrote ${x.path}\nbehavioral_fingerprint: ${x.behavioral_fingerprint}`);
    }));

  lock.command("fingerprint <file>")
    .description("print the lock's recomputed behavioral fingerprint (blake3:<64 hex>) alone on stdout")
    .option("--payload", "print the canonical JSON that is hashed instead (pipe it to b3sum to check independently)")
    .option("--json", "machine-readable output")
    .action(action(async (file: string, flags: { payload?: boolean; json?: boolean }) => {
      const lockDoc = parseLock(await readInputFile(file, "lock"));
      if (flags.payload) {
        process.stdout.write(fingerprintPayload(lockDoc));
        return;
      }
      const fp = await computeFingerprint(lockDoc);
      emit({ ok: true, path: file, behavioral_fingerprint: fp }, flags, (x) => x.behavioral_fingerprint);
    }));

  lock.command("verify <file>")
    .description("check the lock's schema and that its behavioral_fingerprint matches its content (exit 4 when not)")
    .option("--json", "machine-readable output")
    .action(action(async (file: string, flags: { json?: boolean }) => {
      const lockDoc = parseLock(await readInputFile(file, "lock"));
      await verifyLock(lockDoc);
      emit({ ok: true, path: file, behavioral_fingerprint: lockDoc.behavioral_fingerprint }, flags, (x) => `OK ${x.path}\nbehavioral_fingerprint: ${x.behavioral_fingerprint}`);
    }));
}
