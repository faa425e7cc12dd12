import { Command } from "commander";
import { VERSION } from "./version.js";
import { registerLock } from "./commands/lock.js";
import { registerOci } from "./commands/oci.js";
import { registerKeys } from "./commands/keys.js";
import { registerCert } from "./commands/cert.js";
import { registerConfig } from "./commands/config.js";
import { registerSupplyChain } from "./commands/supplychain.js";
import { registerRelease } from "./commands/release.js";
import { registerQuickstart } from "./commands/quickstart.js";
import { registerPolicy } from "./commands/policy.js";
import { registerPolicyTest } from "./commands/policy-test.js";
import { registerPolicyState, registerRuntimeState } from "./commands/runtime.js";
import { registerRuntimeManifest } from "./commands/runtime-manifest.js";
import { registerWal } from "./commands/wal.js";
import { registerLab } from "./commands/lab.js";
import { registerTelemetry } from "./commands/telemetry.js";
import { registerNode } from "./commands/node.js";
import { registerRollout } from "./commands/rollout.js";
import { registerReleaseControlPlane, registerServe, registerToken } from "./commands/control-plane.js";

/** The `autonomy` command tree; shared by the binary and the CLI reference generator. */
export function buildAutonomyProgram(): Command {
  const program = new Command("autonomy")
    .description("AutonomyOps: signed, policy-verified agent releases for edge fleets.\nExit codes: 0 ok, 1 failure, 2 usage, 4 verification failed, 5 WAL fail-hard.")
    .version(VERSION);
  registerQuickstart(program);
  registerKeys(program);
  registerCert(program);
  registerConfig(program);
  registerLock(program);
  registerSupplyChain(program);
  registerReleaseControlPlane(registerRelease(program));
  registerOci(program);
  const policy = registerPolicy(program);
  registerPolicyTest(policy);
  registerPolicyState(policy);
  registerWal(program);
  registerTelemetry(program);
  registerLab(program);
  registerNode(program);
  registerRollout(program);
  registerServe(program);
  registerToken(program);
  const runtime = program.command("runtime").description("the node runtime: serve tools under policy, activate releases, show status");
  registerRuntimeState(runtime);
  registerRuntimeManifest(runtime);
  return program;
}

/** Every command path with its full help text, depth first, for docs/cli.md. */
export function helpPages(cmd: Command, prefix: string[] = []): { path: string; help: string }[] {
  const path = [...prefix, cmd.name()];
  // A fixed width, so the reference does not depend on the terminal it was generated in.
  cmd.configureHelp({ ...cmd.configureHelp(), helpWidth: 100 });
  const pages = [{ path: path.join(" "), help: cmd.helpInformation() }];
  for (const sub of cmd.commands) pages.push(...helpPages(sub, path));
  return pages;
}

/** Renders docs/cli.md from the live command trees (autonomy, then edged and edgectl: `npm run docs:cli`). */
export function renderCliReference(...programs: Command[]): string {
  const pages = programs.flatMap((p) => helpPages(p));
  const toc = pages.map((p) => `- [\`${p.path}\`](#${p.path.replace(/ /g, "-")})`).join("\n");
  const body = pages.map((p) => `## ${p.path}\n\n\`\`\`text\n${p.help.trimEnd()}\n\`\`\``).join("\n\n");
  const names = programs.map((p) => `\`${p.name()}\``).join(", ");
  return `# CLI reference\n\nThe programs ${names}, generated from their command trees by \`npm run docs:cli\`; \`test/docs/docs-cli.test.ts\` fails when it is stale.\n\n${toc}\n\n${body}\n`;
}
