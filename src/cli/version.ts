import { RUNTIME_VERSION } from "../lib/index.js";

/** The CLI reports the package version, which is also the runtime version bundles are checked against. */
export const VERSION: string = RUNTIME_VERSION;
