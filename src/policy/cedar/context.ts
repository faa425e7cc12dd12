/** Context: check everything, convert only what is read. */
import type * as cedar from "@cedar-policy/cedar-wasm/nodejs";
import type { Need } from "./context-needs.js";

/** Limits on a decision request's context; beyond them the request is denied with an error. */
export const CEDAR_CONTEXT_LIMITS = Object.freeze({
  /** Deepest nesting: `context` is depth 0, `context.params` 1, `context.params.a` 2, … */
  maxDepth: 32,
  /** Most values (records, sets and scalars, counted alike) in one context. */
  maxNodes: 10_000,
});

/** Object keys that Cedar's JSON format reads as escapes (entity references, extension values). */
const ESCAPE_KEYS: ReadonlySet<string> = new Set(["__entity", "__extn", "__expr"]);

type CedarValue = cedar.CedarValueJson;

function isPlainObject(v: object): v is Record<string, unknown> {
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Checks the whole context (also the parts no policy reads): returns what is
 * wrong, or undefined. Refused: Cedar's JSON escape keys anywhere, values
 * that are not JSON-like data (functions, symbols, class instances, Maps,
 * Dates, …), nesting deeper than maxDepth, more than maxNodes values.
 */
export function checkContext(context: unknown): string | undefined {
  if (context === null || typeof context !== "object" || Array.isArray(context) || !isPlainObject(context)) return "context must be a plain object";
  let nodes = 0;
  const walk = (v: unknown, depth: number, path: string): string | undefined => {
    if (++nodes > CEDAR_CONTEXT_LIMITS.maxNodes) return `context has more than ${CEDAR_CONTEXT_LIMITS.maxNodes} values`;
    if (depth > CEDAR_CONTEXT_LIMITS.maxDepth) return `context is nested deeper than ${CEDAR_CONTEXT_LIMITS.maxDepth} levels (at ${path})`;
    switch (typeof v) {
      case "string":
      case "number":
      case "boolean":
      case "bigint":
      case "undefined":
        return undefined;
      case "object": {
        if (v === null) return undefined;
        if (Array.isArray(v)) {
          for (let i = 0; i < v.length; i++) {
            const r = walk(v[i], depth + 1, `${path}[${i}]`);
            if (r !== undefined) return r;
          }
          return undefined;
        }
        if (!isPlainObject(v)) return `${path} is not plain data (${Object.prototype.toString.call(v)})`;
        for (const k of Object.keys(v)) {
          if (ESCAPE_KEYS.has(k)) return `${path} has the key "${k}", a Cedar JSON escape (it could forge an entity or extension value)`;
          const r = walk(v[k], depth + 1, `${path}.${k}`);
          if (r !== undefined) return r;
        }
        return undefined;
      }
      default:
        return `${path} is a ${typeof v}, not data`;
    }
  };
  return walk(context, 0, "context");
}

/**
 * Converts a checked value to Cedar JSON: safe integers stay numbers, other
 * numbers and bigints become strings (Cedar has no floats, and its longs
 * are i64), arrays become sets, plain objects records; null/undefined
 * become "absent" (undefined: the key or element is dropped).
 */
function toCedar(v: unknown): CedarValue | undefined {
  switch (typeof v) {
    case "string":
    case "boolean":
      return v;
    case "number":
      return Number.isSafeInteger(v) ? (v === 0 ? 0 : v) : String(v);
    case "bigint":
      return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
    case "object": {
      if (v === null) return undefined;
      if (Array.isArray(v)) {
        const out: CedarValue[] = [];
        for (let i = 0; i < v.length; i++) {
          const x = toCedar(v[i]);
          if (x !== undefined) out.push(x);
        }
        return out;
      }
      const src = v as Record<string, unknown>;
      const out = Object.create(null) as Record<string, CedarValue>;
      for (const k of Object.keys(src)) {
        const x = toCedar(src[k]);
        if (x !== undefined) out[k] = x;
      }
      return out;
    }
    default:
      return undefined;
  }
}

/**
 * The part of a (checked) value that `need` reads, converted. A value that is
 * not a record where the policies navigate into it is sent whole, so Cedar
 * raises the same type error it would on the full context.
 */
function pruned(v: unknown, need: Need): CedarValue | undefined {
  if (v === null || v === undefined) return undefined;
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
