// The ESLint plugin that enforces layers.json (the one layer table of src/). Plain JS so
// eslint.config.js loads it without a TypeScript loader. Rules (each names itself in
// ESLint's output):
//   layers/order          a domain imports only domains of lower layers (never its own layer or above)
//   layers/index-only     another domain is imported only through src/<domain>/index.js
//   layers/no-test-import product code under src/ never imports test/ (unit tests *.test.ts may)
//   layers/known-domain   every folder under src/ is a domain of layers.json, and no file sits
//                         directly under src/ (it would belong to no domain, so no rule would apply)
//   layers/static-specifier  an import() names its module with a string literal (a computed or
//                         template specifier could name any file and escape every rule above)
//   layers/no-require     no require(), createRequire() or `import x = require()` under src/ (the
//                         rules above see import/export only)
// A specifier is checked when it is relative, absolute, a file: URL, or the package's own name
// (autonomyops/...): each of those can reach into src/.
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

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
  return {
    top: parts[0],
    domain: parts.length > 2 ? parts[1] : undefined,
    rest: parts.slice(2).join("/"),
    rootFile: parts.length === 2 ? parts[1] : undefined,
  };
}

/** The package's own name (package.json), so `<name>/...` specifiers are resolved too. */
function packageName(root) {
  try {
    return String(JSON.parse(readFileSync(resolve(root, "package.json"), "utf8")).name ?? "");
  } catch {
    return "";
  }
}

/**
 * The file a specifier points at, or undefined for a bare package that is not this one.
 * `<name>/x` is taken as `<root>/x` (a self-reference through the package's exports ends
 * in the package's own files, which is what matters here).
 */
function target(root, selfName, file, spec) {
  if (spec.startsWith(".")) return resolve(dirname(file), spec);
  if (spec.startsWith("file:")) {
    try {
      return fileURLToPath(spec);
    } catch {
      return resolve(root, "src", "?unresolvable-file-url");
    }
  }
  if (isAbsolute(spec)) return spec;
  if (selfName !== "" && (spec === selfName || spec.startsWith(`${selfName}/`))) return resolve(root, spec.slice(selfName.length + 1) || "src/?package-main");
  return undefined;
}

/** A literal specifier: a string literal, or a template literal without expressions. */
function literalOf(node) {
  if (!node) return undefined;
  if (node.type === "Literal" && typeof node.value === "string") return { node, value: node.value };
  if (node.type === "TemplateLiteral" && node.expressions.length === 0) return { node, value: node.quasis[0].value.cooked };
  return undefined;
}

function sourcesOf(node) {
  switch (node.type) {
    case "ImportDeclaration":
    case "ExportAllDeclaration":
    case "ExportNamedDeclaration":
    case "ImportExpression": {
      const lit = literalOf(node.source);
      return lit ? [lit] : [];
    }
    case "TSImportType": {
      const arg = node.argument;
      const lit = literalOf(arg && arg.type === "TSLiteralType" ? arg.literal : arg);
      return lit ? [lit] : [];
    }
    default:
      return [];
  }
}

/** One rule: `check(ctx, from, to, spec)` reports; shared walking and resolution. */
function layerRule(description, messages, check) {
  return (root, layerOf, selfName = packageName(root)) => ({
    meta: { type: "problem", docs: { description }, messages, schema: [] },
    create(context) {
      const file = context.filename;
      const from = place(root, file);
      if (from.top !== "src" || from.domain === undefined) return {};
      const visit = (node) => {
        for (const src of sourcesOf(node)) {
          const spec = String(src.value);
          const path = target(root, selfName, file, spec);
          if (path === undefined) continue;
          const to = place(root, path);
          check({ report: (messageId, data) => context.report({ node: src.node, messageId, data }), file, from, to, spec, layerOf });
        }
      };
      return { ImportDeclaration: visit, ExportAllDeclaration: visit, ExportNamedDeclaration: visit, ImportExpression: visit, TSImportType: visit };
    },
  });
}

const order = layerRule("a domain imports only domains of lower layers (layers.json)", {
  upward: "src/{{from}} (layer {{fromLayer}}) may not import src/{{to}} (layer {{toLayer}}, higher): a domain imports only lower layers (layers.json). Move the shared code down, or invert the dependency.",
  sideways: "src/{{from}} and src/{{to}} are both in layer {{fromLayer}}: domains of one layer do not import each other (layers.json). Move the shared code down a layer.",
  noDomain: "src/{{from}} may not import src/{{to}}: a file directly under src/ belongs to no layer, so importing it would bypass the layer order (layers.json). Import the domain's index.js instead.",
}, ({ report, from, to, layerOf }) => {
  if (to.top === "src" && to.rootFile !== undefined) return report("noDomain", { from: from.domain, to: to.rootFile });
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
    rootFile: "src/{{file}} sits directly under src/, outside every domain, so no layer rule applies to it or to what imports it. Move it into the domain it belongs to (src/<domain>/).",
  }, schema: [] },
  create(context) {
    const from = place(root, context.filename);
    if (from.top === "src" && from.rootFile !== undefined) {
      return { Program: (node) => context.report({ node, messageId: "rootFile", data: { file: from.rootFile } }) };
    }
    if (from.top !== "src" || from.domain === undefined || layerOf.has(from.domain)) return {};
    return { Program: (node) => context.report({ node, messageId: "unknown", data: { domain: from.domain } }) };
  },
});

/** Rules that apply to every file under src/, with or without a domain. */
function srcRule(meta, create) {
  return (root) => ({
    meta: { type: "problem", schema: [], ...meta },
    create(context) {
      return place(root, context.filename).top === "src" ? create(context) : {};
    },
  });
}

const staticSpecifier = srcRule({
  docs: { description: "import() under src/ names its module with a string literal" },
  messages: {
    computed: "import() with a computed specifier: write the module as a string literal (\"../<domain>/index.js\"). A computed or template specifier can name any file, and the layer rules (layers.json) cannot check it.",
  },
}, (context) => ({
  ImportExpression: (node) => {
    if (literalOf(node.source) === undefined) context.report({ node: node.source, messageId: "computed" });
  },
}));

const noRequire = srcRule({
  docs: { description: "no require()/createRequire()/import x = require() under src/" },
  messages: {
    require: "{{what}} under src/: use an ESM import with a string literal. CommonJS loading is invisible to the layer rules (layers.json), so it could reach any domain's internals.",
  },
}, (context) => {
  const report = (node, what) => context.report({ node, messageId: "require", data: { what } });
  const nameOf = (callee) =>
    callee.type === "Identifier" ? callee.name : callee.type === "MemberExpression" && !callee.computed && callee.property.type === "Identifier" ? callee.property.name : undefined;
  return {
    CallExpression: (node) => {
      const name = nameOf(node.callee);
      // createRequire(import.meta.url)("x") is reported once, at the inner createRequire() call.
      if (name === "require" || name === "createRequire") report(node, `${name}()`);
    },
    TSExternalModuleReference: (node) => report(node, "import … = require()"),
  };
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
      "static-specifier": staticSpecifier(root),
      "no-require": noRequire(root),
    },
  };
}
