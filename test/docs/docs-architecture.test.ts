import { describe, expect, it } from "vitest";
import { access, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { withGenerated } from "../../scripts/domain-graph.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const doc = () => readFile(join(root, "docs/architecture.md"), "utf8");

describe("docs/architecture.md", () => {
  it("has the current layer table and domain dependency graph (run `npm run docs:architecture` after changing layers.json or a domain's imports)", async () => {
    const text = await doc();
    expect(text).toBe(withGenerated(text, root));
  });

  it("names only files that exist (a move must update the map)", async () => {
    const paths = new Set([...(await doc()).matchAll(/\(\.\.\/(src\/[^)#\s]+)\)/g)].map((m) => m[1] ?? ""));
    expect(paths.size).toBeGreaterThan(20);
    for (const p of paths) await expect(access(join(root, p)), p).resolves.toBeUndefined();
  });

  it("maps every glossary term of seed 004 to a file or to the issue that builds it", async () => {
    const rows = (await doc()).split("## Glossary")[1]?.split("\n").filter((l) => l.startsWith("| ")) ?? [];
    for (const term of ["segment", "activation lock", "behavioral fingerprint", "policy bundle", "WAL", "safe-point", "release", "precheck", "state root", "boot epoch", "LKG", "success condition"]) {
      const row = rows.find((r) => r.toLowerCase().startsWith(`| ${term.toLowerCase()}`));
      expect(row, term).toBeDefined();
      expect(row, term).toMatch(/\]\(\.\.\/src\/|not built yet — issue 11/);
    }
  });
});
