import { compileCedar } from "./cedar/index.js";
import { readBundle } from "./bundle/index.js";
import type { EngineCompiler, LoadedPolicy, PolicyBundle } from "./types.js";

export interface CompileOptions {
  compile?: EngineCompiler;
  runtimeVersion?: string;
}

/** `name@version (sha256:…)`, returned as `policy_ref` with every decision. */
export function policyRefOf(bundle: PolicyBundle): string {
  return `${bundle.manifest.name}@${bundle.manifest.policy_bundle_version} (${bundle.digest})`;
}

/** Verifies, then compiles: a bundle that fails either never reaches a state root. */
export async function compileBundle(bytes: Uint8Array, opts: CompileOptions = {}): Promise<LoadedPolicy> {
  const bundle = await readBundle(bytes, opts.runtimeVersion === undefined ? {} : { runtimeVersion: opts.runtimeVersion });
  const engine = (opts.compile ?? compileCedar)(bundle.files);
  return { bundle, engine, ref: policyRefOf(bundle) };
}
