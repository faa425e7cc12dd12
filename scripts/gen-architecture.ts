// Regenerates the generated block of docs/architecture.md: `npm run docs:architecture`.
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { withGenerated } from "./domain-graph.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const path = new URL("../docs/architecture.md", import.meta.url);
writeFileSync(path, withGenerated(readFileSync(path, "utf8"), root));
