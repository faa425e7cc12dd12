import type { Command } from "commander";
import { fileURLToPath } from "node:url";
import { runTutorial01, runTutorial03 } from "../../quickstart/index.js";
import { UsageError } from "../../lib/index.js";
import { action, outcome } from "../run.js";
import { emit } from "../output.js";
import { repositoryOptions } from "../common.js";
import type { RegistryFlags } from "../common.js";

/** examples/ ships in the package next to dist/ and src/. */
const EXAMPLES = fileURLToPath(new URL("../../../examples", import.meta.url));

export function registerQuickstart(program: Command): void {
  program.command("quickstart")
    .description("play a tutorial end to end on embedded defaults. 01: keys, image, policy bundle, lock, attach, sign, verify, tamper drills, activate, enforce over HTTP and MCP. 03: SIGKILL the runtime mid-load, restart, drain the WAL after a collector outage, highest priority first, no event lost")
    .option("--tutorial <n>", "which tutorial: 01 or 03", "01")
    .option("--dir <dir>", "work folder (cleared first)", ".autonomy-quickstart")
    .option("--registry <host:port>", "use this OCI registry instead of a local image layout")
    .option("--plain-http", "talk HTTP to --registry (loopback test registries)")
    .option("--json", "machine-readable output")
    .action(action(async (flags: RegistryFlags & { dir: string; registry?: string; tutorial: string }) => {
      const log = flags.json ? undefined : (line: string): void => void process.stdout.write(`${line}\n`);
      if (flags.tutorial === "03" || flags.tutorial === "3") {
        const r3 = await runTutorial03({ dir: flags.dir, examplesDir: EXAMPLES, ...(log ? { log } : {}) });
        emit(r3, flags, (r) => r.ok
          ? `\nTutorial 03 complete: killed mid-load, recovered, ${r.delivered} events delivered after the outage (${r.answered} answered calls, every decision among them), highest priority first.`
          : "\nTutorial 03 FAILED: a step above did not behave as it must.");
        return outcome(r3.ok);
      }
      if (flags.tutorial !== "01" && flags.tutorial !== "1") throw new UsageError(`no tutorial ${flags.tutorial}`, "choose --tutorial 01 or --tutorial 03");
      const result = await runTutorial01({
        dir: flags.dir, examplesDir: EXAMPLES, registryOptions: repositoryOptions(flags),
        ...(flags.registry !== undefined ? { registry: flags.registry } : {}),
        ...(log ? { log } : {}),
      });
      emit(result, flags, (r) => r.ok
        ? `\nQuickstart complete: ${r.ref} (${r.digest}) verified, activated and enforced; every drill was refused.`
        : "\nQuickstart FAILED: a step above did not behave as it must.");
      return outcome(result.ok);
    }));
}
