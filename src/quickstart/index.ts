export { runTutorial01 } from "./tutorial-01.js";
export type { QuickstartOptions, QuickstartResult, QuickstartStep } from "./tutorial-01.js";
export { runTutorial03 } from "./tutorial-03.js";
export type { Tutorial03Options, Tutorial03Result } from "./tutorial-03.js";
