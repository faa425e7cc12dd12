/**
 * Property tests of the Cedar engine against a model written here, from the
 * contract rather than from the engine: random policy sets from a small
 * grammar of permit/forbid clauses (tool scopes, context conditions that can
 * match, miss or error), random requests (JSON values, anything, hostile keys
 * like `__entity` and `__proto__`, huge integers, floats, deep nesting).
 *
 * The model converts the context as the contract says (only values Cedar
 * holds exactly are accepted: safe integers are Longs, numbers with 1–4
 * decimal places decimals, arrays records of `length`, their elements by index
 * and `items` (the set of them); null, lossy numbers, lone surrogates … make
 * the request invalid)
 * and evaluates each clause three-valued (true / false / error, with Cedar's
 * left-to-right short-circuit). The engine must then never throw, never allow
 * when a forbid matches or no permit matches or any clause errors, and
 * otherwise agree exactly (decision and determining policy ids). This also
 * checks the engine's action slicing, context pruning and decision cache: the
 * model always sees the whole context and the whole policy set.
 *
 * fast-check prints the seed and the shrunk counterexample on failure; rerun
 * with `fc.assert(…, { seed, path })` to reproduce.
 */
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { CEDAR_CONTEXT_LIMITS, compileCedar, createCedarCompiler } from "./index.js";
import type { DecisionRequest, EngineDecision, PolicyEngine, PolicyFile } from "../types.js";

// ---------------------------------------------------------------------------
// The grammar
// ---------------------------------------------------------------------------

const TOOLS = ["a", "b", "c", "tool.echo"] as const;
const REQUEST_TOOLS = [...TOOLS, "zz"] as const;
/** Keys conditions read (all Cedar identifiers; `__proto__` on purpose). */
const COND_KEYS = ["x", "y", "n", "s", "__proto__"] as const;
const STR_LITS = ["a", "b", "x", "0.5", "NaN", "9007199254740992"] as const;
const PATTERNS = ["a*", "*", "x"] as const;

type Lit = number | string;
type Cond =
  | { k: "has"; key: string }
  | { k: "hasNested"; key: string; key2: string }
  | { k: "eq"; key: string; lit: Lit }
  | { k: "guardedEq"; key: string; lit: Lit }
  | { k: "geq"; key: string; lit: number }
  | { k: "nestedEq"; key: string; key2: string; lit: Lit }
  | { k: "like"; key: string; pattern: (typeof PATTERNS)[number] }
  | { k: "contains"; key: string; lit: Lit }
  | { k: "at0"; key: string; lit: Lit }
  | { k: "len"; key: string; lit: number }
  | { k: "eqList"; key: string; lit: Lit }
  | { k: "paramsEmpty" }
  | { k: "nodeSite"; lit: string }
  | { k: "not"; a: Cond }
  | { k: "and"; a: Cond; b: Cond }
  | { k: "or"; a: Cond; b: Cond };

type Scope = { k: "any" } | { k: "eq"; tool: string } | { k: "in"; tools: string[] };

interface Clause {
  effect: "permit" | "forbid";
  scope: Scope;
  when: Cond | undefined;
  unless: Cond | undefined;
  named: boolean;
  file: 0 | 1;
}

const keyArb = fc.constantFrom(...COND_KEYS);
const litArb: fc.Arbitrary<Lit> = fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom(...STR_LITS));

/** Error-free shapes weigh more, so that many requests reach a clean allow or a matching forbid. */
const condArb: fc.Arbitrary<Cond> = fc.letrec<{ cond: Cond }>((tie) => ({
  cond: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    { arbitrary: fc.record({ k: fc.constant("has" as const), key: keyArb }), weight: 3 },
    { arbitrary: fc.record({ k: fc.constant("guardedEq" as const), key: keyArb, lit: litArb }), weight: 4 },
    { arbitrary: fc.record({ k: fc.constant("hasNested" as const), key: keyArb, key2: keyArb }), weight: 1 },
    { arbitrary: fc.record({ k: fc.constant("eq" as const), key: keyArb, lit: litArb }), weight: 1 },
    { arbitrary: fc.record({ k: fc.constant("geq" as const), key: keyArb, lit: fc.integer({ min: -3, max: 3 }) }), weight: 1 },
    { arbitrary: fc.record({ k: fc.constant("nestedEq" as const), key: keyArb, key2: keyArb, lit: litArb }), weight: 1 },
    { arbitrary: fc.record({ k: fc.constant("like" as const), key: keyArb, pattern: fc.constantFrom(...PATTERNS) }), weight: 1 },
    { arbitrary: fc.record({ k: fc.constant("contains" as const), key: keyArb, lit: litArb }), weight: 1 },
    { arbitrary: fc.record({ k: fc.constant("at0" as const), key: keyArb, lit: litArb }), weight: 1 },
    { arbitrary: fc.record({ k: fc.constant("len" as const), key: keyArb, lit: fc.integer({ min: 0, max: 3 }) }), weight: 1 },
    { arbitrary: fc.record({ k: fc.constant("eqList" as const), key: keyArb, lit: litArb }), weight: 1 },
    { arbitrary: fc.constant({ k: "paramsEmpty" as const }), weight: 1 },
    { arbitrary: fc.record({ k: fc.constant("nodeSite" as const), lit: fc.constantFrom("x", "a") }), weight: 2 },
    { arbitrary: fc.record({ k: fc.constant("not" as const), a: tie("cond") }), weight: 1 },
    { arbitrary: fc.record({ k: fc.constant("and" as const), a: tie("cond"), b: tie("cond") }), weight: 2 },
    { arbitrary: fc.record({ k: fc.constant("or" as const), a: tie("cond"), b: tie("cond") }), weight: 2 },
  ),
})).cond;

const scopeArb: fc.Arbitrary<Scope> = fc.oneof(
  fc.constant({ k: "any" as const }),
  fc.record({ k: fc.constant("eq" as const), tool: fc.constantFrom(...TOOLS) }),
  fc.record({ k: fc.constant("in" as const), tools: fc.uniqueArray(fc.constantFrom(...TOOLS), { minLength: 1, maxLength: 3 }) }),
);

const clauseArb: fc.Arbitrary<Clause> = fc.record({
  effect: fc.constantFrom("permit" as const, "forbid" as const),
  scope: scopeArb,
  when: fc.oneof({ arbitrary: fc.constant(undefined), weight: 1 }, { arbitrary: condArb, weight: 2 }),
  unless: fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: condArb, weight: 1 }),
  named: fc.boolean(),
  file: fc.constantFrom(0 as const, 1 as const),
});

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

const ESCAPE_KEYS = ["__entity", "__extn", "__expr", "__array"] as const;
const TRICKY_KEYS = ["__proto__", "constructor", "toString", "hasOwnProperty"] as const;
const HOSTILE_KEYS = [...ESCAPE_KEYS, ...TRICKY_KEYS] as const;
/** Escape keys are rare per key (a request holds many keys), so most requests are valid and get evaluated. */
const requestKeyArb = fc.oneof(
  { arbitrary: fc.constantFrom(...COND_KEYS), weight: 60 },
  { arbitrary: fc.constantFrom(...TRICKY_KEYS), weight: 10 },
  { arbitrary: fc.constantFrom(...ESCAPE_KEYS), weight: 1 },
  { arbitrary: fc.string({ maxLength: 4 }), weight: 10 },
);
/** Values Cedar cannot hold exactly (null, lossy numbers, bigints, lone surrogates) are rarer, so most requests are valid and get evaluated. */
const scalarArb: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.integer({ min: -3, max: 3 }), weight: 8 },
  { arbitrary: fc.constantFrom(0.5, -1.25, 2.0001, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER), weight: 2 },
  { arbitrary: fc.constantFrom(2 ** 53, -(2 ** 53), 2 ** 63, 1e300, 0.123456, 1e-7, -0, Number.NaN, Number.POSITIVE_INFINITY), weight: 1 },
  { arbitrary: fc.double(), weight: 1 },
  { arbitrary: fc.constantFrom(...STR_LITS), weight: 8 },
  { arbitrary: fc.string({ maxLength: 3 }), weight: 4 },
  { arbitrary: fc.constantFrom("\ud800", "a\udc00"), weight: 1 },
  { arbitrary: fc.boolean(), weight: 4 },
  { arbitrary: fc.constant(null), weight: 1 },
  { arbitrary: fc.constant(undefined), weight: 1 },
  { arbitrary: fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }), weight: 1 },
);
const valueArb: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    scalarArb,
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(requestKeyArb, tie("value"), { maxKeys: 4 }),
  ),
})).value;
/** A chain nested `depth` records deep: around the depth limit. */
const deepArb = fc.integer({ min: 25, max: 40 }).map((depth) => {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = { x: v };
  return v;
});
const paramsArb: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  { arbitrary: fc.dictionary(requestKeyArb, valueArb, { maxKeys: 5 }), weight: 6 },
  { arbitrary: fc.dictionary(fc.oneof({ arbitrary: fc.constantFrom(...COND_KEYS), weight: 6 }, { arbitrary: fc.constantFrom(...HOSTILE_KEYS), weight: 1 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4 }), weight: 2 },
  { arbitrary: fc.dictionary(requestKeyArb, fc.anything({ key: requestKeyArb, maxDepth: 3, withNullPrototype: true, withBigInt: true, withSparseArray: true }), { maxKeys: 4 }), weight: 2 },
  { arbitrary: fc.record({ n: fc.integer({ min: -3, max: 3 }), deep: deepArb }), weight: 1 },
);
const nodeArb: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  { arbitrary: fc.record({ site: fc.constantFrom("x", "a", "x", "a", 0.5, null) }), weight: 10 },
  { arbitrary: fc.constant({}), weight: 2 },
  { arbitrary: fc.constant({ site: { __entity: { type: "Site", id: "x" } } }), weight: 1 },
);
const requestArb = fc.record({ tool: fc.constantFrom(...REQUEST_TOOLS), params: paramsArb, node: nodeArb });
type Req = { tool: string; params: Record<string, unknown>; node: Record<string, unknown> };

// ---------------------------------------------------------------------------
// Rendering clauses as Cedar text
// ---------------------------------------------------------------------------

const lit = (l: Lit): string => (typeof l === "number" ? String(l) : JSON.stringify(l));
const p = (key: string): string => `context.params.${key}`;

function render(c: Cond): string {
  switch (c.k) {
    case "has": return `context.params has ${c.key}`;
    case "hasNested": return `context.params has ${c.key}.${c.key2}`;
    case "eq": return `${p(c.key)} == ${lit(c.lit)}`;
    case "guardedEq": return `context.params has ${c.key} && ${p(c.key)} == ${lit(c.lit)}`;
    case "geq": return `${p(c.key)} >= ${c.lit}`;
    case "nestedEq": return `${p(c.key)}.${c.key2} == ${lit(c.lit)}`;
    case "like": return `${p(c.key)} like "${c.pattern}"`;
    case "contains": return `${p(c.key)}.items.contains(${lit(c.lit)})`;
    case "at0": return `${p(c.key)}["0"] == ${lit(c.lit)}`;
    case "len": return `${p(c.key)}.length == ${c.lit}`;
    case "eqList": return `${p(c.key)} == {"__array": true, "length": 1, "0": ${lit(c.lit)}, "items": [${lit(c.lit)}]}`;
    case "paramsEmpty": return "context.params == {}";
    case "nodeSite": return `context.node.site == ${JSON.stringify(c.lit)}`;
    case "not": return `!(${render(c.a)})`;
    case "and": return `(${render(c.a)}) && (${render(c.b)})`;
    case "or": return `(${render(c.a)}) || (${render(c.b)})`;
  }
}

function renderScope(s: Scope): string {
  if (s.k === "any") return "action";
  if (s.k === "eq") return `action == Action::"tool:${s.tool}"`;
  return `action in [${s.tools.map((t) => `Action::"tool:${t}"`).join(", ")}]`;
}

/** The files, and each clause's expected id (`@id`, else `<file>#<index within the file>`). */
function filesOf(clauses: readonly Clause[]): { files: PolicyFile[]; ids: string[] } {
  const texts: string[][] = [[], []];
  const ids: string[] = [];
  clauses.forEach((c, i) => {
    const file = texts[c.file] as string[];
    const id = c.named ? `clause-${i}` : `f${c.file}.cedar#${file.length}`;
    ids.push(id);
    const annotation = c.named ? `@id(${JSON.stringify(id)}) ` : "";
    const when = c.when ? ` when { ${render(c.when)} }` : "";
    const unless = c.unless ? ` unless { ${render(c.unless)} }` : "";
    file.push(`// clause ${i}; "quoted"\n${annotation}${c.effect}(principal, ${renderScope(c.scope)}, resource)${when}${unless};`);
  });
  return { files: texts.map((t, i) => ({ name: `f${i}.cedar`, text: t.join("\n") })), ids };
}

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

type CV = { t: "long"; v: number } | { t: "dec"; v: number } | { t: "str"; v: string } | { t: "bool"; v: boolean } | { t: "set"; items: CV[] } | { t: "rec"; m: Map<string, CV> };
type R = boolean | "error";

/** The contract's conversion of a valid value, written independently of the engine's: one to one, nothing dropped. */
function conv(v: unknown): CV {
  if (typeof v === "string") return { t: "str", v };
  if (typeof v === "boolean") return { t: "bool", v };
  if (typeof v === "number") return Number.isInteger(v) ? { t: "long", v } : { t: "dec", v };
  if (Array.isArray(v)) {
    // An array is a record: its marker, its length, each element under its index, and the set of its elements as `items`.
    const items = v.map(conv);
    const m = new Map<string, CV>([["__array", { t: "bool", v: true }], ["length", { t: "long", v: v.length }]]);
    items.forEach((x, i) => m.set(String(i), x));
    m.set("items", { t: "set", items });
    return { t: "rec", m };
  }
  const m = new Map<string, CV>();
  for (const k of Object.keys(v as object)) m.set(k, conv((v as Record<string, unknown>)[k]));
  return { t: "rec", m };
}

/** Cedar equality of two model values (sets and records unordered). */
function cvEqual(a: CV, b: CV): boolean {
  if (a.t !== b.t) return false;
  if (a.t === "set") {
    const bi = (b as { items: CV[] }).items;
    return a.items.every((x) => bi.some((y) => cvEqual(x, y))) && bi.every((y) => a.items.some((x) => cvEqual(x, y)));
  }
  if (a.t === "rec") {
    const bm = (b as { m: Map<string, CV> }).m;
    return a.m.size === bm.size && [...a.m].every(([k, x]) => bm.has(k) && cvEqual(x, bm.get(k) as CV));
  }
  return a.v === (b as { v: unknown }).v;
}

function wellFormed(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xdc00 && c <= 0xdfff) return false;
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
      i++;
    }
  }
  return true;
}

/** A number Cedar holds exactly: a safe integer other than -0, or 1–4 decimal places inside decimal's range. */
function exactNumber(n: number): boolean {
  if (Number.isInteger(n)) return Math.abs(n) <= Number.MAX_SAFE_INTEGER && !Object.is(n, -0);
  return Number.isFinite(n) && /^-?[0-9]+[.][0-9]{1,4}$/.test(String(n)) && Math.abs(n) < 922337203685477;
}

/** The contract's request checks: every value representable exactly (no null, no lossy number, …), escape keys, depth, size (a value inside an array counts twice). */
function valid(context: Record<string, unknown>): boolean {
  let nodes = 0;
  const walk = (v: unknown, depth: number, weight: number): boolean => {
    nodes += weight;
    if (nodes > CEDAR_CONTEXT_LIMITS.maxNodes || depth > CEDAR_CONTEXT_LIMITS.maxDepth) return false;
    if (typeof v === "boolean") return true;
    if (typeof v === "string") return wellFormed(v);
    if (typeof v === "number") return exactNumber(v);
    if (v === null || typeof v !== "object") return false;
    if (Array.isArray(v)) {
      nodes += 3 * weight; // length, items and the array marker
      for (let i = 0; i < v.length; i++) if (!(i in v) || !walk(v[i], depth + 1, 2 * weight)) return false;
      return true;
    }
    const proto = Object.getPrototypeOf(v) as unknown;
    if (proto !== Object.prototype && proto !== null) return false;
    for (const k of Object.keys(v)) {
      if (k === "__entity" || k === "__extn" || k === "__expr" || k === "__array" || !wellFormed(k)) return false;
      if (!walk((v as Record<string, unknown>)[k], depth + 1, weight)) return false;
    }
    return true;
  };
  return walk(context, 0, 1);
}

function litEq(v: CV, l: Lit): boolean {
  return typeof l === "number" ? v.t === "long" && v.v === l : v.t === "str" && v.v === l;
}

function attr(v: CV | "error", key: string): CV | "error" {
  if (v === "error" || v.t !== "rec") return "error";
  return v.m.get(key) ?? "error";
}

function evalCond(c: Cond, params: CV, node: CV): R {
  switch (c.k) {
    case "has": return params.t === "rec" && params.m.has(c.key);
    case "hasNested": {
      if (params.t !== "rec" || !params.m.has(c.key)) return false;
      const v = params.m.get(c.key) as CV;
      return v.t === "rec" ? v.m.has(c.key2) : "error";
    }
    case "eq": {
      const v = attr(params, c.key);
      return v === "error" ? "error" : litEq(v, c.lit);
    }
    case "guardedEq": {
      if (params.t !== "rec" || !params.m.has(c.key)) return false;
      return litEq(params.m.get(c.key) as CV, c.lit);
    }
    case "geq": {
      const v = attr(params, c.key);
      return v === "error" || v.t !== "long" ? "error" : v.v >= c.lit;
    }
    case "nestedEq": {
      const v = attr(attr(params, c.key), c.key2);
      return v === "error" ? "error" : litEq(v, c.lit);
    }
    case "like": {
      const v = attr(params, c.key);
      if (v === "error" || v.t !== "str") return "error";
      return c.pattern === "*" ? true : c.pattern === "a*" ? v.v.startsWith("a") : v.v === "x";
    }
    case "contains": {
      const v = attr(attr(params, c.key), "items");
      if (v === "error" || v.t !== "set") return "error";
      return v.items.some((i) => litEq(i, c.lit));
    }
    case "at0": {
      const v = attr(attr(params, c.key), "0");
      return v === "error" ? "error" : litEq(v, c.lit);
    }
    case "len": {
      const v = attr(attr(params, c.key), "length");
      return v === "error" ? "error" : litEq(v, c.lit);
    }
    case "eqList": {
      const v = attr(params, c.key);
      return v === "error" ? "error" : cvEqual(v, conv([c.lit]));
    }
    case "paramsEmpty": return params.t === "rec" && params.m.size === 0;
    case "nodeSite": {
      const v = attr(node, "site");
      return v === "error" ? "error" : v.t === "str" && v.v === c.lit;
    }
    case "not": {
      const a = evalCond(c.a, params, node);
      return a === "error" ? "error" : !a;
    }
    case "and": {
      const a = evalCond(c.a, params, node);
      return a === "error" ? "error" : a ? evalCond(c.b, params, node) : false;
    }
    case "or": {
      const a = evalCond(c.a, params, node);
      return a === "error" ? "error" : a ? true : evalCond(c.b, params, node);
    }
  }
}

function scopeMatches(s: Scope, tool: string): boolean {
  return s.k === "any" || (s.k === "eq" ? s.tool === tool : s.tools.includes(tool));
}

/** Cedar's condition `scope && when && !unless`, left to right. */
function evalClause(c: Clause, tool: string, params: CV, node: CV): R {
  if (!scopeMatches(c.scope, tool)) return false;
  if (c.when) {
    const w = evalCond(c.when, params, node);
    if (w !== true) return w;
  }
  if (c.unless) {
    const u = evalCond(c.unless, params, node);
    return u === "error" ? "error" : !u;
  }
  return true;
}

interface Expected {
  valid: boolean;
  results: R[];
}

function expected(clauses: readonly Clause[], r: Req): Expected {
  const context = { params: r.params, node: r.node };
  if (!valid(context)) return { valid: false, results: [] };
  const params = conv(r.params);
  const node = conv(r.node);
  return { valid: true, results: clauses.map((c) => evalClause(c, r.tool, params, node)) };
}

// ---------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------

function requestOf(r: Req): DecisionRequest {
  return { principal: { type: "Agent", id: "agent-1" }, action: `tool:${r.tool}`, resource: { type: "Tool", id: r.tool }, context: { params: r.params, node: r.node } };
}

function check(d: EngineDecision, clauses: readonly Clause[], ids: readonly string[], exp: Expected): void {
  expect(["allow", "deny"]).toContain(d.decision);
  if (!exp.valid) {
    expect(d).toMatchObject({ decision: "deny", policies: [] });
    expect(d.errors.join()).toMatch(/POLICY_REQUEST_INVALID/);
    return;
  }
  const idsWhere = (pred: (c: Clause, r: R) => boolean): string[] => clauses.flatMap((c, i) => (pred(c, exp.results[i] as R) ? [ids[i] as string] : [])).sort();
  const erroring = idsWhere((_, r) => r === "error");
  const forbids = idsWhere((c, r) => c.effect === "forbid" && r === true);
  const permits = idsWhere((c, r) => c.effect === "permit" && r === true);

  // The safety properties, stated on their own.
  if (forbids.length > 0) expect(d.decision).toBe("deny");
  if (permits.length === 0) expect(d.decision).toBe("deny");
  if (erroring.length > 0) expect(d.decision).toBe("deny");

  // And exact agreement with the model.
  const errorIds = [...new Set(d.errors.map((e) => e.slice(0, e.indexOf(": "))))].sort();
  expect(errorIds).toEqual(erroring);
  if (erroring.length > 0) {
    expect([...d.policies].sort()).toEqual(forbids.length > 0 ? forbids : erroring);
  } else if (forbids.length > 0) {
    expect({ decision: d.decision, policies: [...d.policies].sort() }).toEqual({ decision: "deny", policies: forbids });
  } else if (permits.length > 0) {
    expect({ decision: d.decision, policies: [...d.policies].sort() }).toEqual({ decision: "allow", policies: permits });
  } else {
    expect(d).toEqual({ decision: "deny", policies: [], errors: [] });
  }
}

const live: PolicyEngine[] = [];
afterAll(() => {
  for (const e of live.splice(0)) e.dispose();
});

describe("Cedar engine (properties)", () => {
  it("never throws, never allows past a matching forbid, a missing permit or an error, and agrees with the model", () => {
    const cold = createCedarCompiler({ decisionCacheSize: 0 });
    fc.assert(
      fc.property(fc.array(clauseArb, { minLength: 0, maxLength: 8 }), fc.array(requestArb, { minLength: 1, maxLength: 6 }), (clauses, requests) => {
        const { files, ids } = filesOf(clauses);
        const engines = [cold(files), compileCedar(files)];
        try {
          for (const r of requests) {
            const exp = expected(clauses, r);
            for (const engine of engines) {
              check(engine.evaluate(requestOf(r)), clauses, ids, exp);
              check(engine.evaluate(requestOf(r)), clauses, ids, exp); // second time: from the cache
            }
          }
        } finally {
          for (const e of engines) e.dispose();
        }
      }),
      { numRuns: 300 },
    );
  });

  it("never throws on arbitrary requests, whatever their shape", () => {
    const engine = compileCedar([{ name: "all.cedar", text: 'permit(principal, action, resource);\nforbid(principal, action, resource) when { context.params has x && context.params.x == 1 };' }]);
    live.push(engine);
    const anyRequest = fc.record({
      principal: fc.oneof(fc.record({ type: fc.constantFrom("Agent", "Bad Type", "A::B"), id: fc.string() }), fc.anything()),
      action: fc.oneof(fc.string(), fc.anything()),
      resource: fc.oneof(fc.record({ type: fc.constant("Tool"), id: fc.string() }), fc.anything()),
      context: fc.oneof(fc.dictionary(requestKeyArb, valueArb), fc.anything({ key: requestKeyArb, withNullPrototype: true, withBigInt: true, withMap: true, withSet: true, withDate: true, withTypedArray: true, withBoxedValues: true })),
    });
    fc.assert(
      fc.property(anyRequest, (req) => {
        const d = engine.evaluate(req as unknown as DecisionRequest);
        expect(["allow", "deny"]).toContain(d.decision);
        if (d.decision === "allow") expect(d.errors).toEqual([]);
        const ctx = (req as { context: unknown }).context;
        if (ctx && typeof ctx === "object" && (ctx as { params?: { x?: unknown } }).params?.x === 1) expect(d.decision).toBe("deny");
      }),
      { numRuns: 500 },
    );
  });
});
