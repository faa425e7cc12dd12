import type { Command } from "commander";
import { buildEdgectlProgram } from "./edgectl-program.js";
import { buildEdgedProgram } from "./edged-program.js";
import { buildAutonomyProgram } from "./program.js";

/** Every program the package installs (package.json "bin"), in docs/cli.md's order. */
export function cliPrograms(): Command[] {
  return [buildAutonomyProgram(), buildEdgedProgram(), buildEdgectlProgram()];
}
