/**
 * The Cedar policy engine: compiles a bundle's `.cedar` files once, then
 * answers tool-call decisions through cedar-wasm's preparsed ("stateful")
 * authorizer.
 *
 * Fail closed, deny wins. The answer is `allow` only when Cedar says Allow
 * and reports no evaluation error. Cedar by itself skips a policy whose
 * evaluation errors, so an erroring `forbid` would let a permit through; here
 * any error denies. A request Cedar could misread (its JSON escapes
 * `__entity` / `__extn` / `__expr` anywhere in the context, values it cannot
 * represent, too deep or too large) is refused before Cedar sees it.
 *
 * Where the time goes (measured on the 2-core dev machine, cedar-wasm 4.13):
 * a call costs ~15–25 µs fixed (request parsing inside WASM), 1–5 µs per
 * policy in the set Cedar is given, growing with the policy's size (Cedar
 * rebuilds each policy's condition on every call, whether or not its scope
 * matches), and 2–9 µs per context value crossing the WASM boundary (nesting
 * is the dearest: 300 values cost ~1 ms). So the compiler (1) slices the
 * policy set by action: one preparsed set per action
 * named in a policy scope, holding that action's policies plus the
 * action-unconstrained ones (policies whose action scope cannot match are
 * never "satisfied" and never error, so leaving them out changes nothing);
 * (2) computes, per slice, which context paths its policies read, and sends
 * Cedar only those (a path read whole is sent whole; a path only tested with
 * `has` is sent as a placeholder; sibling keys nobody reads are left behind),
 * so the answer is the same as with the full context; (3) remembers recent
 * answers keyed by exactly what Cedar was asked (its answer is a pure
 * function of that: no entities, no clock), so a repeated call, or one that
 * differs only in what no policy reads, skips WASM altogether. An action no
 * policy can apply to is denied by default without calling Cedar at all.
 *
 * Left as it is: a set of many policies that are not scoped to an action
 * (`permit(principal, action, resource) when {…}`) is evaluated in full on
 * every call; at 100 such policies a cold decision is ~270 µs here.
 */
import * as cedar from "@cedar-policy/cedar-wasm/nodejs";
import { PolicyError } from "./errors.js";
import type { DecisionRequest, EngineCompiler, EngineDecision, PolicyEngine, PolicyFile } from "./types.js";

/** Limits on a decision request's context; beyond them the request is denied with an error. */
export const CEDAR_CONTEXT_LIMITS = Object.freeze({
  /** Deepest nesting: `context` is depth 0, `context.params` 1, `context.params.a` 2, … */
  maxDepth: 32,
  /** Most values (records, sets and scalars, counted alike) in one context. */
  maxNodes: 10_000,
});

/** Object keys that Cedar's JSON format reads as escapes (entity references, extension values). */
const ESCAPE_KEYS: ReadonlySet<string> = new Set(["__entity", "__extn", "__expr"]);

/** Beyond these, slicing costs more memory than it saves time: one unsliced set instead. */
const MAX_SLICES = 1024;
const MAX_SLICED_POLICY_COPIES = 20_000;
/** Requests whose key is longer are not cached (keeps the cache's memory bounded: ≤ size × this). */
const MAX_CACHE_KEY_CHARS = 1024;

/** The version of the Cedar library inside cedar-wasm (for status output). */
export function cedarVersion(): string {
  return cedar.getCedarVersion();
}

// ---------------------------------------------------------------------------
// Preparsed-set ids
//
// cedar-wasm keeps preparsed policy sets in a thread-local map inside WASM and
// offers no call to remove one. Preparsing again under the same id replaces
// (and frees) the previous set, so dispose() overwrites its ids with the empty
// set and returns them to this free list; the next engine reuses them. The map
// therefore holds at most as many entries as were ever alive at once, each
// disposed one holding only an empty set.
// ---------------------------------------------------------------------------

const freeIds: string[] = [];
let nextId = 0;

function acquireId(): string {
  return freeIds.pop() ?? `autonomyops-cedar-${nextId++}`;
}

function releaseId(id: string): void {
  try {
    cedar.preparsePolicySet(id, { staticPolicies: {} });
    freeIds.push(id);
  } catch {
    // Leave the id out of the pool: never hand out an id whose content is unknown.
  }
}

// ---------------------------------------------------------------------------
// Compilation
// ---------------------------------------------------------------------------

/** One policy of the bundle, as compiled. @internal */
interface CompiledPolicy {
  /** `@id` annotation, else `<file>#<index>` (index counts from 0 within the file). */
  id: string;
  file: string;
  /** Source text of the statement (annotations included). */
  text: string;
  json: cedar.PolicyJson;
}

/** A slice of the policy set preparsed inside WASM. @internal */
interface Slice {
  /** Preparsed-set id (undefined when the slice is empty: nothing to ask Cedar). */
  setId: string | undefined;
  /** The context paths its policies read. */
  needs: Need;
}

/** What a slice's policies read of one context value. @internal */
interface Need {
  /** Read as a whole value (compared, passed to a function, …): send it all. */
  whole: boolean;
  /** Attributes read with `.attr` / tested with `has attr`. */
  children: Map<string, Need>;
}

/** Tuning of {@link createCedarCompiler}. */
export interface CedarEngineOptions {
  /**
   * Decisions remembered per engine, keyed by exactly what Cedar is asked
   * (principal, action, resource and the context as cut down for the
   * policies): Cedar's answer is a pure function of those, so a hit is the
   * same answer. 0 turns the cache off (benchmarks of the cold path).
   * Default 1024 (at most ~2 MB: longer keys are never cached).
   */
  decisionCacheSize?: number;
}

/**
 * An {@link EngineCompiler} for Cedar with the given tuning; {@link compileCedar}
 * is this with the defaults.
 *
 * ### Examples
 * ```ts
 * import { createCedarCompiler } from "./cedar-engine.js";
 * const cold = createCedarCompiler({ decisionCacheSize: 0 }); // every evaluate goes to Cedar
 * const engine = cold([{ name: "a.cedar", text: "permit(principal, action, resource);" }]);
 * ```
 */
export function createCedarCompiler(options: CedarEngineOptions = {}): EngineCompiler {
  const cacheSize = Math.max(0, Math.floor(options.decisionCacheSize ?? 1024));
  return (files) => new CedarEngine(compilePolicies(files), cacheSize);
}

/**
 * Compiles policy files into a Cedar {@link PolicyEngine}: each file is parsed
 * on its own (errors name the file, line and column), every policy gets a
 * stable id (its `@id("…")` annotation, else `<file>#<index>`), and the set is
 * preparsed inside WASM once, here, never per call. No schema validation.
 *
 * @throws PolicyError `POLICY_COMPILE_FAILED` on a parse error, a template
 * (policies with `?principal`/`?resource` slots are not supported), an empty
 * `@id`, or two policies with the same id.
 *
 * ### Examples
 * ```ts
 * import { compileCedar } from "./cedar-engine.js";
 * const engine = compileCedar([{ name: "echo.cedar", text: 'permit(principal, action == Action::"tool:tool.echo", resource);' }]);
 * engine.evaluate({ principal: { type: "Agent", id: "a1" }, action: "tool:tool.echo", resource: { type: "Tool", id: "tool.echo" }, context: {} });
 * // { decision: "allow", policies: ["echo.cedar#0"], errors: [] }
 * engine.dispose();
 * ```
 */
export const compileCedar: EngineCompiler = createCedarCompiler();

function compilePolicies(files: readonly PolicyFile[]): CompiledPolicy[] {
  const policies: CompiledPolicy[] = [];
  const seen = new Map<string, string>();
  for (const file of files) {
    for (const p of compileFile(file)) {
      const other = seen.get(p.id);
      if (other !== undefined) {
        throw new PolicyError("POLICY_COMPILE_FAILED", `duplicate policy id "${p.id}" in ${p.file} (already used in ${other})`, {
          details: { file: p.file, policy: p.id },
        });
      }
      seen.set(p.id, p.file);
      policies.push(p);
    }
  }
  return policies;
}

function compileFile(file: PolicyFile): CompiledPolicy[] {
  const text = file.text;
  const check = cedar.checkParsePolicySet({ staticPolicies: text });
  const { segments, trailingContent } = splitStatements(text);
  if (check.type === "failure") {
    // Some failures (a template among static policies) come without a location: parsing statement
    // by statement below finds the one at fault and names its line.
    if (check.errors.some((e) => (e.sourceLocations?.length ?? 0) > 0)) throw compileError(file.name, text, 0, check.errors);
    for (const seg of segments) {
      const stmt = text.slice(seg.start, seg.end);
      const parsed = cedar.policyToJson(stmt);
      if (parsed.type === "failure") throw compileError(file.name, text, seg.start, parsed.errors, stmt);
    }
    throw compileError(file.name, text, 0, check.errors);
  }
  if (trailingContent) {
    // Cedar parsed the file, so this is our splitter disagreeing with Cedar: refuse rather than guess.
    const at = locate(text, segments.at(-1)?.end ?? 0);
    throw new PolicyError("POLICY_COMPILE_FAILED", `${file.name}:${at.line}:${at.column}: text after the last policy`, { details: { file: file.name, ...at } });
  }
  const out: CompiledPolicy[] = [];
  segments.forEach((seg, index) => {
    const stmt = text.slice(seg.start, seg.end);
    const parsed = cedar.policyToJson(stmt);
    if (parsed.type === "failure") throw compileError(file.name, text, seg.start, parsed.errors, stmt);
    const annotated = parsed.json.annotations?.["id"];
    if (annotated !== undefined && annotated.trim() === "") {
      const at = locate(text, seg.start);
      throw new PolicyError("POLICY_COMPILE_FAILED", `${file.name}:${at.line}:${at.column}: @id must not be empty`, { details: { file: file.name, ...at } });
    }
    out.push({ id: annotated ?? `${file.name}#${index}`, file: file.name, text: stmt, json: parsed.json });
  });
  return out;
}

/**
 * Splits policy text into statements at each top-level `;`, skipping string
 * literals and `//` comments. Only boundaries come from here: every piece is
 * then parsed by Cedar as exactly one policy, so a disagreement with Cedar's
 * lexer fails the compile instead of misattributing a policy.
 * @internal
 */
function splitStatements(text: string): { segments: { start: number; end: number }[]; trailingContent: boolean } {
  const segments: { start: number; end: number }[] = [];
  const n = text.length;
  let start = 0;
  let content = false;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      content = true;
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) {
          i += 2;
          continue;
        }
        i++;
        if (d === 0x22) break;
      }
      continue;
    }
    if (c === 0x2f /* / */ && text.charCodeAt(i + 1) === 0x2f) {
      while (i < n && text.charCodeAt(i) !== 0x0a && text.charCodeAt(i) !== 0x0d) i++;
      continue;
    }
    if (c === 0x3b /* ; */) {
      segments.push({ start, end: i + 1 });
      start = i + 1;
      content = false;
    } else if (!/\s/.test(text[i] ?? "")) {
      content = true;
    }
    i++;
  }
  return { segments, trailingContent: content };
}

/** Line and column (1-based, in characters) of a character offset. */
function locate(text: string, charOffset: number): { line: number; column: number } {
  const before = text.slice(0, charOffset);
  const lineStart = Math.max(before.lastIndexOf("\n"), before.lastIndexOf("\r")) + 1;
  const line = (before.match(/\r\n|\r|\n/g) ?? []).length + 1;
  return { line, column: charOffset - lineStart + 1 };
}

/** Cedar reports UTF-8 byte offsets into the text it parsed; this maps one to a character offset. */
function byteToChar(text: string, byteOffset: number): number {
  return Buffer.from(text, "utf8").subarray(0, byteOffset).toString("utf8").length;
}

function compileError(file: string, text: string, base: number, errors: readonly cedar.DetailedError[], parsedText = text): PolicyError {
  const lines: string[] = [];
  let first: { line: number; column: number } | undefined;
  for (const e of errors) {
    const loc = e.sourceLocations?.[0];
    if (loc) {
      const at = locate(text, base + byteToChar(parsedText, loc.start));
      first ??= at;
      lines.push(`${file}:${at.line}:${at.column}: ${e.message}${loc.label ? ` (${loc.label})` : ""}`);
    } else {
      lines.push(`${file}: ${e.message}`);
    }
  }
  if (lines.length === 0) lines.push(`${file}: the policy text does not parse`);
  return new PolicyError("POLICY_COMPILE_FAILED", lines.join("; "), { details: { file, ...(first ?? {}) } });
}

// ---------------------------------------------------------------------------
// Slicing by action, and the context each slice reads
// ---------------------------------------------------------------------------

/** The action ids a policy's scope can match, or "any" when unconstrained (or not understood). */
function scopeActions(p: cedar.PolicyJson): string[] | "any" {
  const a = p.action as { op: string; entity?: unknown; entities?: unknown };
  if (a.op === "All") return "any";
  const uids = a.op === "==" || a.op === "in" ? (Array.isArray(a.entities) ? a.entities : a.entity !== undefined ? [a.entity] : undefined) : undefined;
  if (uids === undefined) return "any";
  const ids: string[] = [];
  for (const raw of uids as unknown[]) {
    const uid = (raw && typeof raw === "object" && "__entity" in raw ? raw.__entity : raw) as { type?: unknown; id?: unknown } | null;
    if (!uid || typeof uid.type !== "string" || typeof uid.id !== "string") return "any";
    // Requests always carry Action::"tool:<name>" (entities are empty, so `in` is equality): other types never match.
    if (uid.type === "Action") ids.push(uid.id);
  }
  return ids;
}

function newNeed(): Need {
  return { whole: false, children: new Map() };
}

function needAt(root: Need, path: readonly string[]): Need {
  let n = root;
  for (const attr of path) {
    let c = n.children.get(attr);
    if (!c) {
      c = newNeed();
      n.children.set(attr, c);
    }
    n = c;
  }
  return n;
}

/** `context`, `context.a`, `context.a.b`, … as a path; undefined for any other expression. */
function contextPath(e: unknown): string[] | undefined {
  if (!e || typeof e !== "object") return undefined;
  const o = e as Record<string, unknown>;
  if (o["Var"] === "context") return [];
  const dot = o["."] as { left?: unknown; attr?: unknown } | undefined;
  if (dot && typeof dot === "object" && typeof dot.attr === "string") {
    const p = contextPath(dot.left);
    return p === undefined ? undefined : [...p, dot.attr];
  }
  return undefined;
}

/**
 * Records every context path an expression (Cedar's JSON AST) reads. Walks
 * every node, so an expression form it does not know still counts: any use of
 * `context` other than `.attr` / `has attr` marks the value read whole.
 */
function collectNeeds(e: unknown, root: Need): void {
  if (Array.isArray(e)) {
    for (const x of e) collectNeeds(x, root);
    return;
  }
  if (!e || typeof e !== "object") return;
  const o = e as Record<string, unknown>;
  if ("Value" in o && Object.keys(o).length === 1) return; // a literal: data, never an expression
  const path = contextPath(o);
  if (path !== undefined) {
    needAt(root, path).whole = true;
    return;
  }
  const has = o["has"] as { left?: unknown; attr?: unknown } | undefined;
  if (has && typeof has === "object" && Object.keys(o).length === 1) {
    const left = contextPath(has.left);
    const attrs = typeof has.attr === "string" ? [has.attr] : Array.isArray(has.attr) && has.attr.every((x) => typeof x === "string") ? has.attr : undefined;
    if (left !== undefined && attrs !== undefined && attrs.length > 0) {
      needAt(root, [...left, ...attrs]);
      return;
    }
  }
  for (const v of Object.values(o)) collectNeeds(v, root);
}

// ---------------------------------------------------------------------------
// Context: check everything, convert only what is read
// ---------------------------------------------------------------------------

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
function checkContext(context: unknown): string | undefined {
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
function cedarContext(context: Record<string, unknown>, needs: Need): cedar.Context {
  return (needs.whole ? toCedar(context) : prunedRecord(context, needs)) as cedar.Context;
}

// ---------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------

const EMPTY_ENTITIES: cedar.Entities = [];

function deny(policies: string[], errors: string[]): EngineDecision {
  return { decision: "deny", policies, errors };
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A compiled Cedar policy set; see {@link compileCedar}. @internal */
class CedarEngine implements PolicyEngine {
  readonly kind = "cedar" as const;
  readonly policyCount: number;
  /** Internal id (`p<index>`, short to cross the WASM boundary cheaply) → stable id. */
  readonly #ids: ReadonlyMap<string, string>;
  readonly #byAction: ReadonlyMap<string, Slice>;
  readonly #others: Slice;
  readonly #setIds: readonly string[];
  readonly #cacheSize: number;
  /** Answers by request key, oldest first (evicted first). */
  readonly #cache = new Map<string, EngineDecision>();
  #disposed = false;

  constructor(policies: readonly CompiledPolicy[], cacheSize: number) {
    this.policyCount = policies.length;
    this.#cacheSize = cacheSize;
    this.#ids = new Map(policies.map((p, i) => [`p${i}`, p.id]));

    const any: number[] = [];
    const specific = new Map<string, number[]>();
    policies.forEach((p, i) => {
      const actions = scopeActions(p.json);
      if (actions === "any") any.push(i);
      else for (const a of new Set(actions)) specific.set(a, [...(specific.get(a) ?? []), i]);
    });
    let copies = any.length;
    for (const list of specific.values()) copies += list.length + any.length;
    const sliced = specific.size <= MAX_SLICES && copies <= MAX_SLICED_POLICY_COPIES;

    const setIds: string[] = [];
    const makeSlice = (members: number[]): Slice => {
      const needs = newNeed();
      for (const i of members) collectNeeds((policies[i] as CompiledPolicy).json.conditions, needs);
      if (members.length === 0) return { setId: undefined, needs };
      const staticPolicies: Record<string, string> = {};
      for (const i of members) staticPolicies[`p${i}`] = (policies[i] as CompiledPolicy).text;
      const setId = acquireId();
      setIds.push(setId);
      const r = cedar.preparsePolicySet(setId, { staticPolicies });
      if (r.type === "failure") throw new PolicyError("POLICY_COMPILE_FAILED", `Cedar refused the policy set: ${r.errors.map((e) => e.message).join("; ")}`);
      return { setId, needs };
    };

    try {
      const byAction = new Map<string, Slice>();
      if (sliced) {
        for (const [action, list] of specific) byAction.set(action, makeSlice([...any, ...list].sort((a, b) => a - b)));
        this.#others = makeSlice(any);
      } else {
        this.#others = makeSlice(policies.map((_, i) => i));
      }
      this.#byAction = byAction;
    } catch (e) {
      for (const id of setIds) releaseId(id);
      throw e instanceof PolicyError ? e : new PolicyError("POLICY_COMPILE_FAILED", `Cedar could not load the policy set: ${message(e)}`, { cause: e });
    }
    this.#setIds = setIds;
  }

  evaluate(req: DecisionRequest): EngineDecision {
    try {
      if (this.#disposed) return deny([], ["POLICY_REQUEST_INVALID: the policy engine was disposed"]);
      const shape = checkRequest(req);
      if (shape !== undefined) return deny([], [`POLICY_REQUEST_INVALID: ${shape}`]);
      const problem = checkContext(req.context);
      if (problem !== undefined) return deny([], [`POLICY_REQUEST_INVALID: ${problem}`]);

      const slice = this.#byAction.get(req.action) ?? this.#others;
      if (slice.setId === undefined) return deny([], []); // no policy can apply: default deny
      const context = cedarContext(req.context, slice.needs);
      const key = this.#cacheSize > 0 ? JSON.stringify([req.action, req.principal.type, req.principal.id, req.resource.type, req.resource.id, context]) : "";
      const cacheable = this.#cacheSize > 0 && key.length <= MAX_CACHE_KEY_CHARS;
      if (cacheable) {
        const hit = this.#cache.get(key);
        if (hit) return { decision: hit.decision, policies: [...hit.policies], errors: [...hit.errors] };
      }
      const answer = cedar.statefulIsAuthorized({
        preparsedPolicySetId: slice.setId,
        principal: { type: req.principal.type, id: req.principal.id },
        action: { type: "Action", id: req.action },
        resource: { type: req.resource.type, id: req.resource.id },
        context,
        entities: EMPTY_ENTITIES,
      });
      const decision = interpret(answer, this.#ids);
      if (cacheable) {
        if (this.#cache.size >= this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value as string);
        this.#cache.set(key, { decision: decision.decision, policies: [...decision.policies], errors: [...decision.errors] });
      }
      return decision;
    } catch (e) {
      return deny([], [`evaluation failed: ${message(e)}`]);
    }
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#cache.clear();
    for (const id of this.#setIds) releaseId(id);
  }
}

/**
 * Cedar's answer as ours: allow only on Allow with no evaluation error.
 * (Plain loops on purpose: this runs on every call, and a `.map` callback
 * here tripped a V8 11.3 deoptimizer crash, "unreachable code" in
 * DoComputeBuiltinContinuation, under the benchmark.)
 */
function interpret(answer: cedar.AuthorizationAnswer, ids: ReadonlyMap<string, string>): EngineDecision {
  if (answer.type !== "success") {
    const errors: string[] = [];
    if (answer.type === "failure") for (const e of answer.errors) errors.push(e.message);
    return deny([], errors.length > 0 ? errors : ["Cedar returned no answer"]);
  }
  const { decision, diagnostics } = answer.response;
  const reason: string[] = [];
  for (const id of diagnostics.reason) reason.push(ids.get(id) ?? id);
  if (diagnostics.errors.length > 0) {
    const errors: string[] = [];
    const erroring: string[] = [];
    for (const e of diagnostics.errors) {
      const id = ids.get(e.policyId) ?? e.policyId;
      errors.push(`${id}: ${e.error.message}`);
      if (!erroring.includes(id)) erroring.push(id);
    }
    // Cedar skipped the erroring policies; they decide the deny unless a forbid matched anyway.
    return deny(decision === "deny" && reason.length > 0 ? reason : erroring, errors);
  }
  if (decision === "allow") return { decision: "allow", policies: reason, errors: [] };
  return deny(reason, []);
}

/** The entity references and action must be strings where Cedar expects them. */
function checkRequest(req: DecisionRequest): string | undefined {
  if (!req || typeof req !== "object") return "the request is not an object";
  const ref = (r: unknown): boolean => !!r && typeof r === "object" && typeof (r as { type?: unknown }).type === "string" && typeof (r as { id?: unknown }).id === "string";
  if (!ref(req.principal)) return "principal must be {type, id} strings";
  if (!ref(req.resource)) return "resource must be {type, id} strings";
  if (typeof req.action !== "string") return "action must be a string";
  return undefined;
}
