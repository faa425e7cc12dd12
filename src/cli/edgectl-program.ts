import { Command } from "commander";
import { DEFAULT_CONTROL_SOCKET } from "../edge/index.js";
import { registerEdgectlRelay } from "./commands/edgectl-relay.js";
import { registerEdgectlStorage } from "./commands/edgectl-storage.js";
import { VERSION } from "./version.js";

/** The `edgectl` command tree (the binary and docs/edge.md's reference use it). */
export function buildEdgectlProgram(): Command {
  const program = new Command("edgectl")
    // Each subcommand's --help lists the program-wide options too (--socket, --socket-owner): they may be given after it.
    .configureHelp({ showGlobalOptions: true })
    .description("Control a running edged over its control socket: relay status, configuration and bandwidth, dead letters, sending segments.\nBefore connecting, the socket is checked: a symlink, a non-socket, an owner other than you, root or --socket-owner, or a directory others can write is refused (nothing is sent).\nExit codes: 0 ok, 1 failure (CONTROL_SOCKET_UNAVAILABLE when edged is not there), 2 usage, 4 the socket is untrusted (CONTROL_SOCKET_UNTRUSTED).")
    .version(VERSION)
    .option("--socket <path>", "edged's control socket", DEFAULT_CONTROL_SOCKET)
    .option("--socket-owner <user>", "also trust a socket (and directory) owned by this user or uid: edged's dedicated account; by default only you and root");
  registerEdgectlRelay(program);
  registerEdgectlStorage(program);
  return program;
}
