export { runTutorial01 } from "./tutorial-01.js";
export type { QuickstartOptions, QuickstartResult, QuickstartStep } from "./tutorial-01.js";
export { runTutorial02 } from "./tutorial-02.js";
export type { Tutorial02Options, Tutorial02Result, Tutorial02Fault, Tutorial02Timeouts } from "./tutorial-02.js";
export { runTutorial03 } from "./tutorial-03.js";
export type { Tutorial03Options, Tutorial03Result } from "./tutorial-03.js";
export { runTutorial04 } from "./tutorial-04.js";
export type { Tutorial04Options, Tutorial04Result, Tutorial04Node } from "./tutorial-04.js";
