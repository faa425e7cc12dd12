import { Command } from "commander";
import { registerEdgedBootstrap } from "./commands/edged-boot.js";
import { main } from "./run.js";
import { VERSION } from "./version.js";

const program = new Command("edged")
  .description("AutonomyOps edge daemon: precheck (config, certificates, OS fingerprint, reconstruction) and run (relay, runtime).")
  .version(VERSION)
  .option("--config <edge.toml>", "edge configuration file");
registerEdgedBootstrap(program);
await main(program);
