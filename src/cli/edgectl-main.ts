import { Command } from "commander";
import { main } from "./run.js";
import { VERSION } from "./version.js";

// edgectl talks to a running edged over its control socket; edged arrives with the edge issues.
const program = new Command("edgectl")
  .description("Control a running edged: relay status, dead-letter list/retry/purge, bandwidth.\nNot yet implemented in this build: only --help and --version work.")
  .version(VERSION)
  .option("--socket <path>", "edged control socket", "/run/edged/ctl.sock");
program.action(() => {
  program.help();
});
await main(program);
