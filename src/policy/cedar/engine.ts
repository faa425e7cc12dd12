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
import { messageOf } from "../errors.js";
import type { DecisionRequest, EngineCompiler, EngineDecision, PolicyEngine } from "../types.js";
import { compilePolicies } from "./compile.js";
import type { CompiledPolicy } from "./compile.js";
import { cedarContext, checkContext } from "./context.js";
import { DecisionCache } from "./decision-cache.js";
import { releaseId } from "./ids.js";
import { buildSlices } from "./slices.js";
import type { Slice } from "./slices.js";

/** The version of the Cedar library inside cedar-wasm (for status output). */
export function cedarVersion(): string {
  return cedar.getCedarVersion();
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
 * import { createCedarCompiler } from "./engine.js";
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
 * import { compileCedar } from "./engine.js";
 * const engine = compileCedar([{ name: "echo.cedar", text: 'permit(principal, action == Action::"tool:tool.echo", resource);' }]);
 * engine.evaluate({ principal: { type: "Agent", id: "a1" }, action: "tool:tool.echo", resource: { type: "Tool", id: "tool.echo" }, context: {} });
 * // { decision: "allow", policies: ["echo.cedar#0"], errors: [] }
 * engine.dispose();
 * ```
 */
export const compileCedar: EngineCompiler = createCedarCompiler();

const EMPTY_ENTITIES: cedar.Entities = [];

function deny(policies: string[], errors: string[]): EngineDecision {
  return { decision: "deny", policies, errors };
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
  readonly #cache: DecisionCache;
  #disposed = false;

  constructor(policies: readonly CompiledPolicy[], cacheSize: number) {
    this.policyCount = policies.length;
    this.#cache = new DecisionCache(cacheSize);
    this.#ids = new Map(policies.map((p, i) => [`p${i}`, p.id]));
    const slices = buildSlices(policies);
    this.#byAction = slices.byAction;
    this.#others = slices.others;
    this.#setIds = slices.setIds;
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
      const key = this.#cache.keyOf(req, context);
      if (key !== undefined) {
        const hit = this.#cache.get(key);
        if (hit) return hit;
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
      if (key !== undefined) this.#cache.set(key, decision);
      return decision;
    } catch (e) {
      return deny([], [`evaluation failed: ${messageOf(e)}`]);
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
