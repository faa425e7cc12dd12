import { mkdir, readFile, readdir, unlink } from "node:fs/promises";
import { errnoCode, safeEqual, sha256Digest, writeFileAtomic, crashPoint } from "../lib/index.js";
import { compileCedar } from "./cedar/index.js";
import { readBundle } from "./bundle/index.js";
import { PolicyError } from "./errors.js";
import { bundlePath, commitNodeState, policyPaths, readNodeState } from "./state.js";
import type { NodeState, PolicySlot } from "./state.js";
import type { EngineCompiler, LoadedPolicy, PolicyBundle } from "./types.js";

export interface LoadOptions {
  compile?: EngineCompiler;
  runtimeVersion?: string;
  now?: () => Date;
  /**
   * Applied inside the state lock after the slots rotate; may throw to refuse
   * the whole load (activation uses it for rollback protection).
   */
  update?: (next: NodeState, previous: NodeState) => NodeState;
}

export interface LoadResult {
  loaded: LoadedPolicy;
  state: NodeState;
  /** False when the bundle already was current (nothing rotated). */
  rotated: boolean;
}

/** `name@version (sha256:…)`, returned as `policy_ref` with every decision. */
export function policyRefOf(bundle: PolicyBundle): string {
  return `${bundle.manifest.name}@${bundle.manifest.policy_bundle_version} (${bundle.digest})`;
}

/** Verifies, then compiles: a bundle that fails either never reaches the state root. */
export async function compileBundle(bytes: Uint8Array, opts: LoadOptions = {}): Promise<LoadedPolicy> {
  const bundle = await readBundle(bytes, opts.runtimeVersion === undefined ? {} : { runtimeVersion: opts.runtimeVersion });
  const engine = (opts.compile ?? compileCedar)(bundle.files);
  return { bundle, engine, ref: policyRefOf(bundle) };
}

/**
 * Loads a bundle into the `current` slot: verify → compile → store the bytes
 * (content-addressed, durable) → one atomic commit of the node state in which
 * the old current becomes LKG. Any failure before the commit changes nothing.
 */
export async function loadPolicy(stateRoot: string, bytes: Uint8Array, opts: LoadOptions = {}): Promise<LoadResult> {
  const loaded = await compileBundle(bytes, opts);
  try {
    const slot: PolicySlot = {
      digest: loaded.bundle.digest,
      name: loaded.bundle.manifest.name,
      version: loaded.bundle.manifest.policy_bundle_version,
      loaded_at: (opts.now?.() ?? new Date()).toISOString(),
    };
    let rotated = false;
    const state = await commitNodeState(stateRoot, async (prev) => {
      rotated = prev.current?.digest !== slot.digest;
      const next: NodeState = rotated ? { ...prev, current: slot, ...(prev.current ? { lkg: prev.current } : {}) } : prev;
      const final = opts.update ? opts.update(next, prev) : next;
      // Stored before the commit that names it: state.json never points at a missing bundle.
      await mkdir(policyPaths(stateRoot).bundles, { recursive: true });
      await writeFileAtomic(bundlePath(stateRoot, slot.digest), bytes);
      crashPoint("policy-after-store");
      return final;
    }, (committed) => collectGarbage(stateRoot, committed));
    return { loaded, state, rotated };
  } catch (e) {
    loaded.engine.dispose();
    throw e;
  }
}

/** Reads a slot's bundle back from the store, re-verifying it (files at rest can be altered). */
export async function openSlot(stateRoot: string, slot: PolicySlot, opts: LoadOptions = {}): Promise<LoadedPolicy> {
  const path = bundlePath(stateRoot, slot.digest);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new PolicyError("POLICY_STATE_INVALID", `the ${slot.name}@${slot.version} bundle is missing from the store (${path}): ${errnoCode(e) ?? String(e)}`, { cause: e });
  }
  const actual = sha256Digest(bytes);
  if (!safeEqual(actual, slot.digest)) {
    throw new PolicyError("BUNDLE_DIGEST_MISMATCH", `the stored bundle ${path} was altered: expected ${slot.digest}, got ${actual}`, { details: { expected: slot.digest, actual } });
  }
  return compileBundle(bytes, opts);
}

/** Keeps only the bundles the state names (current and LKG); failures here never fail a load. */
async function collectGarbage(stateRoot: string, state: NodeState): Promise<void> {
  const keep = new Set([state.current?.digest, state.lkg?.digest].filter((d): d is string => d !== undefined).map((d) => `${d.replace(":", "-")}.tar.gz`));
  const dir = policyPaths(stateRoot).bundles;
  try {
    for (const f of await readdir(dir)) if (!keep.has(f) && f.endsWith(".tar.gz")) await unlink(`${dir}/${f}`).catch(() => undefined);
  } catch {
    // A store we cannot list is reported by status, not by a successful load.
  }
}

export { readNodeState };
