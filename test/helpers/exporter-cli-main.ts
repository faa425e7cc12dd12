/**
 * The `autonomy telemetry …` commands on their own, for test/telemetry/exporter-cli.test.ts:
 * the same registerTelemetry and the same main() as the real binary, without
 * needing program.ts or a build. Run with `node --import tsx`.
 */
import { Command } from "commander";
import { main } from "../../src/cli/run.js";
import { registerTelemetry } from "../../src/cli/commands/telemetry.js";

const program = new Command("autonomy");
registerTelemetry(program);
await main(program);
