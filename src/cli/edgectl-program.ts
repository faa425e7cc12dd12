import { Command } from "commander";
import { DEFAULT_CONTROL_SOCKET } from "../edge/index.js";
import { registerEdgectlRelay } from "./commands/edgectl-relay.js";
import { registerEdgectlStorage } from "./commands/edgectl-storage.js";
import { VERSION } from "./version.js";

/** The `edgectl` command tree (the binary and docs/edge.md's reference use it). */
export function buildEdgectlProgram(): Command {
  const program = new Command("edgectl")
    .description("Control a running edged over its control socket: relay status, configuration and bandwidth, dead letters, sending segments.\nExit codes: 0 ok, 1 failure (CONTROL_SOCKET_UNAVAILABLE when edged is not there), 2 usage.")
    .version(VERSION)
    .option("--socket <path>", "edged's control socket", DEFAULT_CONTROL_SOCKET);
  registerEdgectlRelay(program);
  registerEdgectlStorage(program);
  return program;
}
