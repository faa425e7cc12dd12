import { readFileSync } from "node:fs";

/** The package (and runtime) version, read once from package.json next to dist/ or src/. */
export const RUNTIME_VERSION: string = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
