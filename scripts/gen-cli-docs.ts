// Regenerates docs/cli.md from the live command trees (autonomy, edged, edgectl): `npm run docs:cli`.
import { writeFileSync } from "node:fs";
import { renderCliReference } from "../src/cli/program.js";
import { cliPrograms } from "../src/cli/reference.js";

writeFileSync(new URL("../docs/cli.md", import.meta.url), renderCliReference(...cliPrograms()));
