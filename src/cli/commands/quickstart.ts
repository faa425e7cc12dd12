import type { Command } from "commander";
import { fileURLToPath } from "node:url";
import { runTutorial01 } from "../../quickstart/index.js";
import { action } from "../run.js";
import { emit } from "../output.js";
import { repositoryOptions } from "../common.js";
import type { RegistryFlags } from "../common.js";

/** examples/ ships in the package next to dist/ and src/. */
const EXAMPLES = fileURLToPath(new URL("../../../examples", import.meta.url));

export function registerQuickstart(program: Command): void {
  program.command("quickstart")
    .description("play tutorial 01 end to end on embedded defaults: keys, image, policy bundle, lock, attach, sign, verify, tamper drills, activate, enforce over HTTP and MCP")
    .option("--dir <dir>", "work folder (cleared first)", ".autonomy-quickstart")
    .option("--registry <host:port>", "use this OCI registry instead of a local image layout")
    .option("--plain-http", "talk HTTP to --registry (loopback test registries)")
    .option("--json", "machine-readable output")
    .action(action(async (flags: RegistryFlags & { dir: string; registry?: string }) => {
      const log = flags.json ? undefined : (line: string): void => void process.stdout.write(`${line}\n`);
      const result = await runTutorial01({
        dir: flags.dir, examplesDir: EXAMPLES, registryOptions: repositoryOptions(flags),
        ...(flags.registry !== undefined ? { registry: flags.registry } : {}),
        ...(log ? { log } : {}),
      });
      if (!result.ok) process.exitCode = 1;
      emit(result, flags, (r) => r.ok
        ? `\nQuickstart complete: ${r.ref} (${r.digest}) verified, activated and enforced; every drill was refused.`
        : "\nQuickstart FAILED: a step above did not behave as it must.");
    }));
}
