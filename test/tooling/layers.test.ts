import { describe, expect, it } from "vitest";
import { readdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { ESLint } from "eslint";
import tseslint from "typescript-eslint";
import layers from "../../layers.json" with { type: "json" };

const root = fileURLToPath(new URL("../..", import.meta.url));

/**
 * Lints `code` as if it were the file at `path`, with the project's real eslint.config.js
 * (so the layer rules and their severity are the ones `npm run lint` applies). The probe is
 * never written to disk; type-aware rules are switched off because it is not in the program.
 */
async function lintAs(path: string, code: string): Promise<{ rule: string | null; severity: number; message: string }[]> {
  const eslint = new ESLint({ cwd: root, overrideConfig: tseslint.configs.disableTypeChecked as ESLint.Options["overrideConfig"] });
  const [result] = await eslint.lintText(code, { filePath: join(root, path) });
  return (result?.messages ?? []).map((m) => ({ rule: m.ruleId, severity: m.severity, message: m.message }));
}

const layerOf = (domain: string): number => layers.layers.findIndex((l) => domain in l);
const layerFindings = async (path: string, code: string) => (await lintAs(path, code)).filter((m) => m.rule?.startsWith("layers/"));

describe("layers (layers.json, enforced by npm run lint)", () => {
  it("fails an upward import (src/lib importing src/runtime) as an error naming layers/order", async () => {
    const found = await layerFindings("src/lib/layers-probe.ts", 'export { startRuntime } from "../runtime/index.js";\n');
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ rule: "layers/order", severity: 2 });
    expect(found[0]?.message).toContain(`src/lib (layer ${layerOf("lib")}) may not import src/runtime (layer ${layerOf("runtime")}, higher)`);
  });

  it("fails an import between two domains of one layer (lock -> sign)", async () => {
    const found = await layerFindings("src/lock/layers-probe.ts", 'export { loadPublicKey } from "../sign/index.js";\n');
    expect(found.map((f) => f.rule)).toEqual(["layers/order"]);
    expect(found[0]?.message).toContain(`both in layer ${layerOf("lock")}`);
  });

  it("fails a reach into another domain's internals, also from a higher layer (layers/index-only)", async () => {
    const found = await layerFindings("src/runtime/layers-probe.ts", 'import { walPaths } from "../telemetry/wal/paths.js";\nexport const p = walPaths;\n');
    expect(found.map((f) => f.rule)).toEqual(["layers/index-only"]);
    expect(found[0]?.message).toContain("src/telemetry/index.js");
  });

  it("fails product code importing test/ (layers/no-test-import), allows it in a unit test", async () => {
    const code = 'import { caught } from "../../test/helpers/caught.js";\nexport const c = caught;\n';
    expect((await layerFindings("src/sign/layers-probe.ts", code)).map((f) => f.rule)).toEqual(["layers/no-test-import"]);
    expect(await layerFindings("src/sign/layers-probe.test.ts", code)).toEqual([]);
  });

  it("fails a folder under src/ that layers.json does not name (layers/known-domain)", async () => {
    const found = await layerFindings("src/nowhere/a.ts", "export const a = 1;\n");
    expect(found.map((f) => f.rule)).toEqual(["layers/known-domain"]);
  });

  it("accepts a downward import through the index, and imports inside a domain", async () => {
    expect(await layerFindings("src/runtime/layers-probe.ts", 'export { loadPolicy } from "../node/index.js";\nexport { RuntimeError } from "./errors.js";\n')).toEqual([]);
    expect(await layerFindings("src/cli/layers-probe.ts", 'export type { NodeState } from "../node/index.js";\n')).toEqual([]);
  });

  it("names every folder under src/ in exactly one layer", async () => {
    const table = layers.layers.flatMap((l) => Object.keys(l));
    expect(new Set(table).size).toBe(table.length);
    const folders = (await readdir(join(root, "src"), { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
    for (const f of folders) expect(table, f).toContain(f);
  });
});
