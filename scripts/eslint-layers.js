// The ESLint plugin that enforces layers.json (the one layer table of src/). Plain JS so
// eslint.config.js loads it without a TypeScript loader. Rules (each names itself in
// ESLint's output):
//   layers/order          a domain imports only domains of lower layers (never its own layer or above)
//   layers/index-only     another domain is imported only through src/<domain>/index.js
//   layers/no-test-import product code under src/ never imports test/ (unit tests *.test.ts may)
//   layers/known-domain   every folder under src/ is a domain of layers.json
import { readFileSync } from "node:fs";
import { dirname, relative, resolve, sep } from "node:path";

/** domain -> layer index (0 = bottom), from layers.json. */
export function readLayerTable(file) {
  const doc = JSON.parse(readFileSync(file, "utf8"));
  const layerOf = new Map();
  doc.layers.forEach((layer, i) => {
    for (const domain of Object.keys(layer)) layerOf.set(domain, i);
  });
  return layerOf;
}

/** Where a file is, relative to the repository root: `{ top: "src", domain: "lib", rest }`. */
function place(root, file) {
  const parts = relative(root, file).split(sep);
  return { top: parts[0], domain: parts.length > 2 ? parts[1] : undefined, rest: parts.slice(2).join("/") };
}

function sourcesOf(node) {
  switch (node.type) {
    case "ImportDeclaration":
    case "ExportAllDeclaration":
    case "ExportNamedDeclaration":
    case "ImportExpression":
      return node.source && node.source.type === "Literal" ? [node.source] : [];
    case "TSImportType": {
      const arg = node.argument;
      const lit = arg && arg.type === "TSLiteralType" ? arg.literal : arg;
      return lit && lit.type === "Literal" ? [lit] : [];
    }
    default:
      return [];
  }
}

/** One rule: `check(ctx, from, to, spec)` reports; shared walking and resolution. */
function layerRule(description, messages, check) {
  return (root, layerOf) => ({
    meta: { type: "problem", docs: { description }, messages, schema: [] },
    create(context) {
      const file = context.filename;
      const from = place(root, file);
      if (from.top !== "src" || from.domain === undefined) return {};
      const visit = (node) => {
        for (const src of sourcesOf(node)) {
          const spec = String(src.value);
          if (!spec.startsWith(".")) continue;
          const to = place(root, resolve(dirname(file), spec));
          check({ report: (messageId, data) => context.report({ node: src, messageId, data }), file, from, to, spec, layerOf });
        }
      };
      return { ImportDeclaration: visit, ExportAllDeclaration: visit, ExportNamedDeclaration: visit, ImportExpression: visit, TSImportType: visit };
    },
  });
}

const order = layerRule("a domain imports only domains of lower layers (layers.json)", {
  upward: "src/{{from}} (layer {{fromLayer}}) may not import src/{{to}} (layer {{toLayer}}, higher): a domain imports only lower layers (layers.json). Move the shared code down, or invert the dependency.",
  sideways: "src/{{from}} and src/{{to}} are both in layer {{fromLayer}}: domains of one layer do not import each other (layers.json). Move the shared code down a layer.",
}, ({ report, from, to, layerOf }) => {
  if (to.top !== "src" || to.domain === undefined || to.domain === from.domain) return;
  const fromLayer = layerOf.get(from.domain);
  const toLayer = layerOf.get(to.domain);
  if (fromLayer === undefined || toLayer === undefined) return; // layers/known-domain reports it
  if (toLayer > fromLayer) report("upward", { from: from.domain, to: to.domain, fromLayer, toLayer });
  else if (toLayer === fromLayer) report("sideways", { from: from.domain, to: to.domain, fromLayer });
});

const indexOnly = layerRule("another domain is imported only through its index.ts", {
  internals: "import src/{{to}} only through src/{{to}}/index.js, not {{spec}}: a domain's other files are its internals. Export what you need from its index.ts.",
}, ({ report, from, to, spec }) => {
  if (to.top !== "src" || to.domain === undefined || to.domain === from.domain) return;
  if (to.rest !== "index.js" && to.rest !== "index.ts") report("internals", { to: to.domain, spec });
});

const noTestImport = layerRule("product code under src/ never imports test/", {
  testCode: "src/ may not import test code ({{spec}}): test-only code lives under test/ and ships nowhere. Only unit tests (*.test.ts) may use test/helpers.",
}, ({ report, file, to, spec }) => {
  if (to.top === "test" && !/\.test\.ts$/.test(file)) report("testCode", { spec });
});

const knownDomain = (root, layerOf) => ({
  meta: { type: "problem", docs: { description: "every folder under src/ is a domain of layers.json" }, messages: {
    unknown: "src/{{domain}} is not in layers.json: add the domain to the layer it belongs to.",
  }, schema: [] },
  create(context) {
    const from = place(root, context.filename);
    if (from.top !== "src" || from.domain === undefined || layerOf.has(from.domain)) return {};
    return { Program: (node) => context.report({ node, messageId: "unknown", data: { domain: from.domain } }) };
  },
});

/** The plugin, bound to a repository root and its layers.json. */
export function layersPlugin(root) {
  const layerOf = readLayerTable(resolve(root, "layers.json"));
  return {
    meta: { name: "layers" },
    rules: {
      order: order(root, layerOf),
      "index-only": indexOnly(root, layerOf),
      "no-test-import": noTestImport(root, layerOf),
      "known-domain": knownDomain(root, layerOf),
    },
  };
}
