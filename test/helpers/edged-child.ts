/**
 * `edged` as a child process with the daemon tests' relay parts (recording
 * doubles) and JSON config loader: the real command tree, flags, logger,
 * control socket, signals and exit code. Run with `node --import tsx`:
 *   node --import tsx test/helpers/edged-child.ts run --config edge.json --control-socket S
 */
import { buildEdgedProgram } from "../../src/cli/edged-program.js";
import { main } from "../../src/cli/run.js";
import { loadJsonEdgeConfig, recordingParts } from "./relay-parts-double.js";

const parts = recordingParts();
// EDGED_CHILD_HANG_START=1: opening the relay's parts never ends (a start-up stuck on a path), for the signal tests.
const factory: typeof parts.factory = process.env.EDGED_CHILD_HANG_START === "1" ? () => new Promise(() => void setInterval(() => undefined, 1000)) : parts.factory;
await main(buildEdgedProgram(() => Promise.resolve({ loadConfig: loadJsonEdgeConfig, parts: factory })));
