import { describe, expect, it } from "vitest";
import { readdir } from "node:fs/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
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

  describe("bypasses the adversarial review found, each failing naming its rule", () => {
    const probe = "src/lib/layers-probe.ts";
    const rulesOf = async (code: string, path = probe) => (await layerFindings(path, code)).map((f) => f.rule);

    it("a template-literal import() is checked like a string (no expressions) ...", async () => {
      expect(await rulesOf("export const m = import(`../runtime/runtime.js`);\n")).toEqual(["layers/order", "layers/index-only"]);
    });

    it("... and a template or concatenated specifier with expressions is refused (layers/static-specifier)", async () => {
      const part = "run";
      expect(await rulesOf('export const m = import("../run" + "time/index.js");\n')).toEqual(["layers/static-specifier"]);
      expect(await rulesOf(`const d = "${part}";\nexport const m = import(\`../\${d}time/index.js\`);\n`)).toEqual(["layers/static-specifier"]);
    });

    it("require, createRequire and import x = require() are refused (layers/no-require)", async () => {
      const viaCreateRequire = 'import { createRequire } from "node:module";\nexport const m: unknown = createRequire(import.meta.url)("../runtime/index.js");\n';
      expect(await rulesOf(viaCreateRequire)).toEqual(["layers/no-require"]);
      expect(await rulesOf('import x = require("../runtime/index.js");\nexport const m = x;\n')).toEqual(["layers/no-require"]);
      expect(await rulesOf('declare const require: (s: string) => unknown;\nexport const m = require("../runtime/index.js");\n')).toEqual(["layers/no-require"]);
    });

    it("a file directly under src/ is refused, and so is importing one (layers/known-domain, layers/order)", async () => {
      const hub = await layerFindings("src/hub.ts", 'export { startRuntime } from "./runtime/runtime.js";\n');
      expect(hub.map((f) => f.rule)).toEqual(["layers/known-domain"]);
      expect(hub[0]?.message).toContain("src/hub.ts sits directly under src/");
      const viaHub = await layerFindings(probe, 'export { startRuntime } from "../hub.js";\n');
      expect(viaHub.map((f) => f.rule)).toEqual(["layers/order"]);
      expect(viaHub[0]?.message).toContain("src/hub.js");
    });

    it("absolute paths, file: URLs and the package's own name are resolved like relative ones", async () => {
      const abs = join(root, "src/runtime/runtime.js");
      expect(await rulesOf(`export { startRuntime } from ${JSON.stringify(abs)};\n`)).toEqual(["layers/order", "layers/index-only"]);
      expect(await rulesOf(`export { startRuntime } from "${pathToFileURL(abs).href}";\n`)).toEqual(["layers/order", "layers/index-only"]);
      expect(await rulesOf('export { startRuntime } from "autonomyops/src/runtime/index.js";\n')).toEqual(["layers/order"]);
      expect(await rulesOf('export { walPaths } from "autonomyops/src/telemetry/wal/paths.js";\n', "src/runtime/layers-probe.ts")).toEqual(["layers/index-only"]);
      expect(await rulesOf('export const m = import("autonomyops");\n')).toEqual(["layers/order"]);
    });

    it("leaves other packages and builtins alone", async () => {
      expect(await rulesOf('import { readFile } from "node:fs/promises";\nimport { z } from "zod";\nexport const a = [readFile, z];\n')).toEqual([]);
    });
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
