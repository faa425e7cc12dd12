/**
 * Policy domain types shared by bundles, engines, the node's slots and the runtime's
 * interceptor. Engines sit behind {@link PolicyEngine} so another language
 * (Rego via OPA-WASM, where the `opa` compiler exists) is one module more.
 */

/** The engines a bundle may name in its manifest. Only `cedar` ships (see docs/policy.md for why not Rego). */
export type EngineKind = "cedar";

/** An entity reference as Cedar spells it: `Type::"id"`. */
export interface EntityRef {
  type: string;
  id: string;
}

/**
 * One authorization question: may `principal` do `action` to `resource` given
 * `context`? For a tool call: principal = the agent (`Agent::"<id>"`),
 * action = `Action::"tool:<name>"` (so `action` here is `tool:<name>`),
 * resource = the tool (`Tool::"<name>"`), context = { params, node }.
 */
export interface DecisionRequest {
  principal: EntityRef;
  action: string;
  resource: EntityRef;
  context: Record<string, unknown>;
}

export type Decision = "allow" | "deny";

/** What an engine answered. Any entry in `errors` forces `deny`, whatever else matched. */
export interface EngineDecision {
  decision: Decision;
  /** Ids (`@id` annotation, else the engine's own id) of the policies that determined the decision. */
  policies: string[];
  /** Evaluation or request errors; non-empty means deny (fail closed). */
  errors: string[];
}

/** A compiled, ready-to-evaluate policy set. Evaluation is synchronous and never throws. */
export interface PolicyEngine {
  readonly kind: EngineKind;
  /** Number of policies in the set (for status and benchmarks). */
  readonly policyCount: number;
  evaluate(request: DecisionRequest): EngineDecision;
  /** Frees engine resources (e.g. a preparsed set inside WASM). Safe to call twice. */
  dispose(): void;
}

/** A policy source file as it sits in a bundle. */
export interface PolicyFile {
  name: string;
  text: string;
}

/** Compiles policy files into an engine; throws PolicyError(POLICY_COMPILE_FAILED) naming file and line. */
export type EngineCompiler = (files: readonly PolicyFile[]) => PolicyEngine;

/** manifest.json of a policy bundle. */
export interface BundleManifest {
  name: string;
  /** semver of this bundle. */
  policy_bundle_version: string;
  /** Space-separated semver constraints on the runtime (`>=0.1.0 <1.0.0`); "" = any. */
  required_runtime_version: string;
  /** `sha256:` over the sorted file names and contents (see docs/policy.md for the exact bytes). */
  bundle_hash: string;
  /** RFC 3339 UTC. */
  created_at: string;
  engine: EngineKind;
  /** Per-file `sha256:<hex>` of every policy file in the bundle, by file name. */
  files: Record<string, string>;
}

/** A bundle read from bytes and fully checked (digests, names, limits). */
export interface PolicyBundle {
  manifest: BundleManifest;
  files: PolicyFile[];
  /** `sha256:` of the .tar.gz bytes, the digest a lock names. */
  digest: string;
  size: number;
}

/** A verified bundle and its compiled engine (compileBundle); what a slot enforces once loaded. */
export interface LoadedPolicy {
  bundle: PolicyBundle;
  engine: PolicyEngine;
  /** `name@version (sha256:…)`: returned as `policy_ref` with every decision. */
  ref: string;
}
