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
await main(buildEdgedProgram(() => Promise.resolve({ loadConfig: loadJsonEdgeConfig, parts: parts.factory })));
