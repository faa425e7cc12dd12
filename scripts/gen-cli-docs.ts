// Regenerates docs/cli.md from the live command tree: `npm run docs:cli`.
import { writeFileSync } from "node:fs";
import { buildAutonomyProgram, renderCliReference } from "../src/cli/program.js";

writeFileSync(new URL("../docs/cli.md", import.meta.url), renderCliReference(buildAutonomyProgram()));
