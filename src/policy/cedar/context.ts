/** Context: check everything is representable exactly, convert only what is read. */
import type * as cedar from "@cedar-policy/cedar-wasm/nodejs";
import type { Need } from "./context-needs.js";
import { formatFieldPath } from "../../lib/index.js";

/** Limits on a decision request's context; beyond them the request is denied with an error. */
export const CEDAR_CONTEXT_LIMITS = Object.freeze({
  /** Deepest nesting: `context` is depth 0, `context.params` 1, `context.params.a` 2, … */
  maxDepth: 32,
  /** Most values (records, sets and scalars, counted alike) in one context. */
  maxNodes: 10_000,
});

/** Object keys that Cedar's JSON format reads as escapes (entity references, extension values). */
const ESCAPE_KEYS: ReadonlySet<string> = new Set(["__entity", "__extn", "__expr"]);
/**
 * The key, always `true`, that marks an array's record (see {@link toCedar}):
 * reserved, refused as an input key, so an object `{"length":1,"0":"ls"}`
 * never reads as the array `["ls"]` to a policy that tests `has __array`
 * or compares the whole record.
 */
export const ARRAY_MARKER = "__array";

type CedarValue = cedar.CedarValueJson;

function isPlainObject(v: object): v is Record<string, unknown> {
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** A value Cedar cannot hold exactly, and where it is (`params.force`, `params.tags[2]`). */
export interface InputProblem {
  path: string;
  problem: string;
}

/** Cedar's `decimal` holds 4 fraction digits in an i64; beyond this magnitude it overflows. */
const DECIMAL_MAX = 922_337_203_685_477;
const DECIMAL_RE = /^-?\d+\.\d{1,4}$/;
/** A UTF-16 surrogate without its partner: Cedar strings are UTF-8 and cannot hold it. */
const LONE_SURROGATE_RE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/** Any surrogate at all: the cheap test, so the exact one runs only on text outside the BMP. */
const ANY_SURROGATE_RE = /[\ud800-\udfff]/;

function hasLoneSurrogate(s: string): boolean {
  return ANY_SURROGATE_RE.test(s) && LONE_SURROGATE_RE.test(s);
}

/**
 * The Cedar `decimal` literal of a JS number with 1–4 fraction digits inside
 * decimal's range (its shortest decimal spelling, which reads back as the same
 * number), or undefined.
 */
export function decimalLiteral(n: number): string | undefined {
  const s = String(n);
  return DECIMAL_RE.test(s) && Math.abs(n) < DECIMAL_MAX ? s : undefined;
}

/** Why a number has no exact Cedar value, or undefined when it has one. */
function numberProblem(n: number): string | undefined {
  if (Number.isSafeInteger(n)) return Object.is(n, -0) ? "-0 (negative zero) has no Cedar value distinct from 0; send 0" : undefined;
  if (!Number.isFinite(n)) return `${String(n)} is not a JSON number`;
  if (Number.isInteger(n)) return `the integer ${String(n)} is beyond ±(2^53−1), where a JSON number stops being exact; send it as a string`;
  if (decimalLiteral(n) === undefined) return `the number ${String(n)} has more than 4 decimal places or is outside ±${DECIMAL_MAX} (Cedar's decimal); send it as a string`;
  return undefined;
}

/**
 * Walks a value found at `root` (its path segments; its depth is `rootDepth`,
 * `context` being depth 0) and returns the first part that has no exact Cedar counterpart, or
 * undefined. Representable, and converted one to one by {@link toCedar}:
 * strings (well-formed UTF-16), booleans, safe integers (Long), numbers with
 * 1–4 decimal places (decimal), arrays (a record of their length, their
 * elements by index and the set of them, see {@link toCedar}), plain objects
 * (record) whose keys are not Cedar JSON escapes. Everything else is refused,
 * never coerced: null and undefined (a record cannot hold them; Cedar would
 * see the key as absent), unsafe integers, other numbers, lone surrogates,
 * bigints, non-plain objects, nesting deeper than maxDepth and more than
 * maxNodes values. Cedar holds an array's element twice (at its index and in
 * `items`), so a value inside an array counts twice, inside an array of
 * arrays four times, …: the bound is on what Cedar is given.
 */
export function findUnrepresentable(value: unknown, root: readonly (string | number)[] = [], rootDepth = root.length): InputProblem | undefined {
  let nodes = 0;
  const base = rootDepth - root.length;
  const path: (string | number)[] = [...root];
  const at = (problem: string): InputProblem => ({ path: formatFieldPath(path), problem });
  const walk = (v: unknown, weight: number): InputProblem | undefined => {
    nodes += weight;
    if (nodes > CEDAR_CONTEXT_LIMITS.maxNodes) return at(`the input has more than ${CEDAR_CONTEXT_LIMITS.maxNodes} values (a value inside an array counts twice: Cedar holds it at its index and in the array's items)`);
    if (base + path.length > CEDAR_CONTEXT_LIMITS.maxDepth) return at(`nested deeper than ${CEDAR_CONTEXT_LIMITS.maxDepth} levels`);
    switch (typeof v) {
      case "boolean":
        return undefined;
      case "string":
        return hasLoneSurrogate(v) ? at("the string has an unpaired UTF-16 surrogate (not text Cedar can hold)") : undefined;
      case "number": {
        const p = numberProblem(v);
        return p === undefined ? undefined : at(p);
      }
      case "object":
        if (v === null) return at("null has no Cedar value (a policy would see the key as absent); leave the key out");
        return Array.isArray(v) ? walkArray(v, weight) : walkRecord(v, weight);
      default:
        return at(`a ${typeof v} is not JSON data`);
    }
  };
  const walkArray = (a: readonly unknown[], weight: number): InputProblem | undefined => {
    nodes += 3 * weight; // its `length`, its `items` set and its marker
    for (let i = 0; i < a.length; i++) {
      path.push(i);
      if (!(i in a)) return at("an array hole is not JSON data");
      const r = walk(a[i], 2 * weight);
      if (r !== undefined) return r;
      path.pop();
    }
    return undefined;
  };
  const walkRecord = (o: object, weight: number): InputProblem | undefined => {
    if (!isPlainObject(o)) return at(`not plain data (${Object.prototype.toString.call(o)})`);
    for (const k of Object.keys(o)) {
      path.push(k);
      if (ESCAPE_KEYS.has(k)) return at(`the key "${k}" is a Cedar JSON escape (it could forge an entity or extension value)`);
      if (k === ARRAY_MARKER) return at(`the key "${k}" is reserved: it marks an array's record for the policy (an object with it could pose as an array)`);
      if (hasLoneSurrogate(k)) return at("the key has an unpaired UTF-16 surrogate");
      const r = walk(o[k], weight);
      if (r !== undefined) return r;
      path.pop();
    }
    return undefined;
  };
  return walk(value, 1);
}

/**
 * Checks the whole context (also the parts no policy reads): returns what is
 * wrong (with its path), or undefined. See {@link findUnrepresentable}.
 */
export function checkContext(context: unknown): string | undefined {
  if (context === null || typeof context !== "object" || Array.isArray(context) || !isPlainObject(context)) return "context must be a plain object";
  const p = findUnrepresentable(context, ["context"], 0);
  return p === undefined ? undefined : `${p.path}: ${p.problem}`;
}

/**
 * Converts a checked value to Cedar JSON, one to one (nothing dropped or
 * coerced; {@link fromCedar} is its inverse): safe integers stay numbers
 * (Long), other accepted numbers become `decimal` extension values, plain
 * objects records, and an array a record that shows its order, its
 * duplicates and its membership: `["cp","a","a"]` is
 * `{ "__array": true, "length": 3, "0": "cp", "1": "a", "2": "a", "items": ["cp","a"] (a set) }`
 * (recursively). The `__array` key is refused in input, so only an array's
 * record carries it: an object shaped like one never reads as an array.
 */
export function toCedar(v: unknown): CedarValue {
  if (typeof v === "number") {
    if (Number.isSafeInteger(v)) return v;
    return { __extn: { fn: "decimal", arg: decimalLiteral(v) ?? String(v) } };
  }
  if (v === null || typeof v !== "object") return v as CedarValue;
  const out = Object.create(null) as Record<string, CedarValue>;
  if (Array.isArray(v)) {
    const items = v.map(toCedar);
    out[ARRAY_MARKER] = true;
    out["length"] = items.length;
    items.forEach((x, i) => (out[String(i)] = x));
    out["items"] = items;
    return out;
  }
  const src = v as Record<string, unknown>;
  for (const k of Object.keys(src)) out[k] = toCedar(src[k]);
  return out;
}

/** The JSON value a Cedar JSON value made by {@link toCedar} stands for. */
export function fromCedar(v: CedarValue): unknown {
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return v.map(fromCedar); // a bare set: not made by toCedar, read as its elements
  const o = v as Record<string, CedarValue>;
  const extn = o["__extn"] as { fn?: unknown; arg?: unknown } | undefined;
  if (Object.keys(o).length === 1 && extn && extn.fn === "decimal" && typeof extn.arg === "string") return Number(extn.arg);
  if (o[ARRAY_MARKER] === true && Array.isArray(o["items"]) && typeof o["length"] === "number") {
    // An array's record: its elements in index order (duplicates included), not its `items` set.
    return Array.from({ length: o["length"] }, (_, i) => fromCedar(o[String(i)] as CedarValue));
  }
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o)) Object.defineProperty(out, k, { value: fromCedar(o[k] as CedarValue), writable: true, enumerable: true, configurable: true });
  return out;
}

/**
 * The part of a (checked) value that `need` reads, converted. A value that is
 * not a record where the policies navigate into it is sent whole, so Cedar
 * raises the same type error it would on the full context.
 */
function pruned(v: unknown, need: Need): CedarValue | undefined {
  if (v === undefined) return undefined;
  if (need.whole) return toCedar(v);
  if (need.children.size === 0) return true; // only tested with `has`: any present value will do
  if (typeof v !== "object" || Array.isArray(v)) return toCedar(v);
  return prunedRecord(v as Record<string, unknown>, need);
}

function prunedRecord(src: Record<string, unknown>, need: Need): Record<string, CedarValue> {
  const out = Object.create(null) as Record<string, CedarValue>;
  for (const [k, child] of need.children) {
    if (!Object.hasOwn(src, k)) continue;
    const x = pruned(src[k], child);
    if (x !== undefined) out[k] = x;
  }
  return out;
}

/** The context Cedar gets for a slice: the (checked) request context cut down to what the slice reads. */
export function cedarContext(context: Record<string, unknown>, needs: Need): cedar.Context {
  return (needs.whole ? toCedar(context) : prunedRecord(context, needs)) as cedar.Context;
}
