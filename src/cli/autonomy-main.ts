import { Command } from "commander";
import { main } from "./run.js";
import { VERSION } from "./version.js";
import { registerLock } from "./commands/lock.js";
import { registerOci } from "./commands/oci.js";
import { registerKeys } from "./commands/keys.js";
import { registerSupplyChain } from "./commands/supplychain.js";
import { registerQuickstart } from "./commands/quickstart.js";

const program = new Command("autonomy")
  .description("AutonomyOps: signed, policy-verified agent releases for edge fleets.\nExit codes: 0 ok, 1 failure, 2 usage, 4 verification failed, 5 WAL fail-hard.")
  .version(VERSION);
registerQuickstart(program);
registerKeys(program);
registerLock(program);
registerSupplyChain(program);
registerOci(program);
await main(program);
