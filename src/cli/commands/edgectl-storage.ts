import type { Command } from "commander";
import { ControlClient, DEFAULT_CONTROL_SOCKET } from "../../edge/index.js";
import type { StoreVerifyReport } from "../../edge/index.js";
import { ExitCodes } from "../../lib/index.js";
import { emit } from "../output.js";
import { action, outcome } from "../run.js";

/** A scrub reads the whole store and answers once, at the end: the client waits up to an hour, not the usual 30 s. */
const VERIFY_TIMEOUT_MS = 3_600_000;

function verifyText(r: StoreVerifyReport): string {
  const head = `verified ${r.checked} segment(s), ${r.bytes} bytes`;
  if (r.removed.length === 0) return `${head}: all match their ids`;
  return [`${head}: ${r.removed.length} no longer matched and were removed (eviction reason corrupt):`, ...r.removed.map((e) => `  ${e.id}  ${e.bytes} bytes`)].join("\n");
}

/** `edgectl storage …`: the segment store of the edged behind --socket. */
export function registerEdgectlStorage(program: Command): void {
  const storage = program.command("storage").description("the segment store of the edged behind --socket");
  storage.command("verify")
    .description("scrub: re-hash every stored segment and remove (with a `corrupt` eviction record) any that no longer matches its id; exit 4 when one did. edged's start reads names and sizes only")
    .option("--json", "machine-readable output")
    .action(action(async (_opts: { json?: boolean }, cmd: Command) => {
      const flags = cmd.optsWithGlobals<{ socket?: string; json?: boolean }>();
      const ctl = new ControlClient({ socketPath: flags.socket ?? DEFAULT_CONTROL_SOCKET, timeoutMs: VERIFY_TIMEOUT_MS });
      const report = await ctl.storageVerify();
      emit(report, flags, verifyText);
      return outcome(report.removed.length === 0, ExitCodes.verification);
    }));
}
