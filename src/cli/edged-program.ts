import { Command } from "commander";
import { EdgeError } from "../edge/index.js";
import { registerEdgedBootstrap } from "./commands/edged-boot.js";
import { registerEdgedRun } from "./commands/edged-run.js";
import type { EdgedRunDeps } from "./commands/edged-run.js";
import { VERSION } from "./version.js";

/**
 * The relay's parts `edged run` composes by default. The ledger + executor,
 * the transport and the config loader land on main in parallel (issue 11);
 * until they are wired here, `edged run` says so instead of pretending.
 */
export function defaultEdgedDeps(): Promise<EdgedRunDeps> {
  return Promise.reject(
    new EdgeError("RELAY_DISABLED", "this build of edged does not include the relay's ledger, executor and transport yet; `edged run` cannot start", {
      hint: "the relay ledger, executor and transport land with the rest of issue 11 (branch e-daemon-wiring wires them); `edged precheck` works now",
    }),
  );
}

/** The `edged` command tree (the binary builds it with the real parts; tests with their own). */
export function buildEdgedProgram(deps: () => Promise<EdgedRunDeps> = defaultEdgedDeps): Command {
  const program = new Command("edged")
    .description("AutonomyOps edge daemon: run (relay, control socket, metrics), precheck (config, certificates, OS fingerprint, reconstruction).\nExit codes: 0 ok (run: stopped by SIGTERM/SIGINT), 1 failure, 2 usage.")
    .version(VERSION)
    .option("--config <edge.toml>", "edge configuration file");
  registerEdgedRun(program, deps);
  registerEdgedBootstrap(program);
  return program;
}
