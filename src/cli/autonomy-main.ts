import { main } from "./run.js";
import { buildAutonomyProgram } from "./program.js";

await main(buildAutonomyProgram());
