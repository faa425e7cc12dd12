import { Command } from "commander";
import { main } from "./run.js";
import { VERSION } from "./version.js";

// The edge daemon arrives with the edge issues; until then it only describes itself.
const program = new Command("edged")
  .description("AutonomyOps edge daemon: precheck (config, certificates, OS fingerprint, reconstruction) and run (relay, runtime).\nNot yet implemented in this build: only --help and --version work.")
  .version(VERSION)
  .option("--config <edge.toml>", "edge configuration file");
program.action(() => {
  program.help();
});
await main(program);
