import { buildEdgedProgram } from "./edged-program.js";
import { main } from "./run.js";

await main(buildEdgedProgram());
