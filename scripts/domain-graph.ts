// Renders the generated part of docs/architecture.md from the tree itself: the layer table
// (layers.json) and the module dependency graph of the domains (every relative import
// between src/<domain>/ folders, unit tests excluded). `npm run docs:architecture` writes
// it; test/docs/docs-architecture.test.ts fails when the checked-in copy is stale.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import ts from "typescript";
import layers from "../layers.json" with { type: "json" };

export const BEGIN = "<!-- BEGIN GENERATED: npm run docs:architecture (layers.json + the imports of src/) -->";
export const END = "<!-- END GENERATED -->";

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith(".ts") && !e.name.endsWith(".test.ts") ? [p] : [];
  });
}

/** importer domain → the domains it imports. */
export function domainEdges(root: string): Map<string, Set<string>> {
  const src = join(root, "src");
  const edges = new Map<string, Set<string>>();
  for (const file of sourceFiles(src)) {
    const from = relative(src, file).split(sep)[0] ?? "";
    for (const ref of ts.preProcessFile(readFileSync(file, "utf8"), true, true).importedFiles) {
      if (!ref.fileName.startsWith(".")) continue;
      const parts = relative(src, resolve(dirname(file), ref.fileName)).split(sep);
      const to = parts[0];
      if (to === undefined || to === from || to === ".." || parts.length < 2) continue;
      edges.set(from, (edges.get(from) ?? new Set<string>()).add(to));
    }
  }
  return edges;
}

function existingDomains(root: string): Set<string> {
  return new Set(readdirSync(join(root, "src"), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name));
}

export function renderGenerated(root: string): string {
  const exists = existingDomains(root);
  const edges = domainEdges(root);
  const table = layers.layers.flatMap((layer, i) =>
    Object.entries(layer).map(([domain, owns]) => `| ${i} | ${exists.has(domain) ? `[\`${domain}\`](../src/${domain}/)` : `\`${domain}\` (no folder yet)`} | ${owns} |`));
  const graph = ["```mermaid", "flowchart BT"];
  layers.layers.forEach((layer, i) => {
    const present = Object.keys(layer).filter((d) => exists.has(d));
    if (present.length === 0) return;
    graph.push(`  subgraph L${i}["layer ${i}"]`, ...present.map((d) => `    ${d}`), "  end");
  });
  for (const [from, row] of [...edges].sort(([a], [b]) => a.localeCompare(b))) {
    for (const to of [...row].sort()) graph.push(`  ${from} --> ${to}`);
  }
  graph.push("```");
  return [
    BEGIN,
    "",
    "### Layers (bottom → top), from `layers.json`",
    "",
    "| layer | domain | owns |",
    "|---|---|---|",
    ...table,
    "",
    "### Module dependencies between domains (arrow = imports; unit tests excluded)",
    "",
    ...graph,
    "",
    END,
  ].join("\n");
}

/** `doc` with its generated block replaced by the current one. */
export function withGenerated(doc: string, root: string): string {
  const a = doc.indexOf(BEGIN);
  const b = doc.indexOf(END);
  if (a < 0 || b < a) throw new Error(`docs/architecture.md lacks the markers ${BEGIN} … ${END}`);
  return doc.slice(0, a) + renderGenerated(root) + doc.slice(b + END.length);
}
