import { describe, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import { buildAutonomyProgram, renderCliReference } from "../../src/cli/program.js";

describe("docs/cli.md", () => {
  it("matches the live command tree (run `npm run docs:cli` after changing a command)", async () => {
    const doc = await readFile(new URL("../../docs/cli.md", import.meta.url), "utf8");
    expect(doc).toBe(renderCliReference(buildAutonomyProgram()));
  });
});
