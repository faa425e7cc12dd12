import { Command } from "commander";
import { activateRelayedRelease, loadEdgeConfig, openRelayParts, watchActiveRelease } from "../edge/index.js";
import { registerEdgedBootstrap } from "./commands/edged-boot.js";
import { registerEdgedRun } from "./commands/edged-run.js";
import type { EdgedRunDeps } from "./commands/edged-run.js";
import { VERSION } from "./version.js";

/** What `edged run` composes by default: edge.toml's loader and the relay's real parts. */
export function defaultEdgedDeps(): Promise<EdgedRunDeps> {
  return Promise.resolve({ loadConfig: loadEdgeConfig, parts: openRelayParts, release: { watchActiveRelease, activateRelayedRelease } });
}

/** The `edged` command tree (the binary builds it with the real parts; tests with their own). */
export function buildEdgedProgram(deps: () => Promise<EdgedRunDeps> = defaultEdgedDeps): Command {
  const program = new Command("edged")
    // Each subcommand's --help lists the program-wide options too (--config): they may be given after it.
    .configureHelp({ showGlobalOptions: true })
    .description("AutonomyOps edge daemon: run (relay, control socket, metrics), precheck (config, certificates, OS fingerprint, reconstruction).\nExit codes: 0 ok (run: stopped by SIGTERM/SIGINT), 1 failure, 2 usage (precheck: 64, see its --help).")
    .version(VERSION)
    .option("--config <edge.toml>", "edge configuration file");
  registerEdgedRun(program, deps);
  registerEdgedBootstrap(program);
  return program;
}
