export { runTutorial01 } from "./tutorial-01.js";
export type { QuickstartOptions, QuickstartResult, QuickstartStep } from "./tutorial-01.js";
