import { buildEdgectlProgram } from "./edgectl-program.js";
import { main } from "./run.js";

await main(buildEdgectlProgram());
