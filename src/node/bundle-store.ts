import { mkdir, readFile, readdir, unlink } from "node:fs/promises";
import { join } from "node:path";
import { errnoCode, safeEqual, sha256Digest, writeFileAtomic } from "../lib/index.js";
import { PolicyError, compileBundle, slotDigests } from "../policy/index.js";
import type { CompileOptions, LoadedPolicy, PolicySlot, PolicySlots } from "../policy/index.js";
import { NodeError } from "./errors.js";
import { bundleFileName, bundlePath, stateRootPaths } from "./layout.js";

/**
 * The node's bundle store: content-addressed policy bundles under
 * `{state_root}/policy/bundles`, written durably before the commit of
 * `state.json` that names them, so the state never points at a missing bundle.
 */
export async function storeBundle(stateRoot: string, bundleDigest: string, bytes: Uint8Array): Promise<void> {
  await mkdir(stateRootPaths(stateRoot).bundles, { recursive: true });
  await writeFileAtomic(bundlePath(stateRoot, bundleDigest), bytes);
}

/** Reads a slot's bundle back from the store, re-verifying it (files at rest can be altered), and compiles it. */
export async function openSlot(stateRoot: string, slot: PolicySlot, opts: CompileOptions = {}): Promise<LoadedPolicy> {
  const path = bundlePath(stateRoot, slot.digest);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new NodeError("POLICY_STATE_INVALID", `the ${slot.name}@${slot.version} bundle is missing from the store (${path}): ${errnoCode(e) ?? String(e)}`, { cause: e });
  }
  const actual = sha256Digest(bytes);
  if (!safeEqual(actual, slot.digest)) {
    throw new PolicyError("BUNDLE_DIGEST_MISMATCH", `the stored bundle ${path} was altered: expected ${slot.digest}, got ${actual}`, { details: { expected: slot.digest, actual } });
  }
  return compileBundle(bytes, opts);
}

/** Keeps only the bundles the slots name (current and LKG); failures here never fail a load. */
export async function collectBundles(stateRoot: string, slots: PolicySlots): Promise<void> {
  const keep = new Set(slotDigests(slots).map(bundleFileName));
  const dir = stateRootPaths(stateRoot).bundles;
  try {
    for (const f of await readdir(dir)) if (!keep.has(f) && f.endsWith(".tar.gz")) await unlink(join(dir, f)).catch(() => undefined);
  } catch {
    // A store we cannot list is reported by status, not by a successful load.
  }
}
