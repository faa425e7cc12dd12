import { describe, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { renderCliReference } from "../../src/cli/program.js";
import { cliPrograms } from "../../src/cli/reference.js";

/** Every command below `cmd` that has no subcommands of its own (what a user runs), with its path. */
function leaves(cmd: Command, prefix: string[] = []): { path: string; cmd: Command }[] {
  const path = [...prefix, cmd.name()];
  if (cmd.commands.length === 0) return [{ path: path.join(" "), cmd }];
  return cmd.commands.flatMap((c) => leaves(c, path));
}

describe("docs/cli.md", () => {
  it("matches the live command trees of autonomy, edged and edgectl (run `npm run docs:cli` after changing a command)", async () => {
    const doc = await readFile(new URL("../../docs/cli.md", import.meta.url), "utf8");
    expect(doc).toBe(renderCliReference(...cliPrograms()));
  });

  it("documents every program in package.json's bin, and every edged and edgectl command and option", async () => {
    const pkg = JSON.parse(await readFile(new URL("../../package.json", import.meta.url), "utf8")) as { bin: Record<string, string> };
    const doc = await readFile(new URL("../../docs/cli.md", import.meta.url), "utf8");
    expect(cliPrograms().map((p) => p.name()).sort()).toEqual(Object.keys(pkg.bin).sort());
    for (const program of cliPrograms().filter((p) => p.name() !== "autonomy")) {
      for (const { path, cmd } of leaves(program)) {
        const section = doc.split(`\n## ${path}\n`)[1]?.split("\n## ")[0];
        expect(section, `docs/cli.md has no section for ${path}`).toBeDefined();
        for (const o of cmd.options) expect(section, `${path} ${o.long ?? o.flags}`).toContain(o.long ?? o.flags);
      }
    }
  });

  it("every edged and edgectl command has --help and a JSON output (--json, or --output json where the original spells it so)", () => {
    for (const program of cliPrograms().filter((p) => p.name() !== "autonomy")) {
      for (const { path, cmd } of leaves(program)) {
        expect(cmd.helpInformation(), `${path} --help`).toContain("-h, --help");
        const json = cmd.options.some((o) => o.long === "--json") || cmd.options.some((o) => o.long === "--output" && (o.argChoices ?? []).includes("json"));
        expect(json, `${path} has no --json`).toBe(true);
      }
    }
  });
});
