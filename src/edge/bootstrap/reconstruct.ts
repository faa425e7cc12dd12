import { blake3 } from "hash-wasm";
import { dateOf, messageOf, systemClock } from "../../lib/index.js";
import type { Clock } from "../../lib/index.js";
import { crashPoint } from "../../lib/index.js";
import { openReleaseStore, openSlot, readNodeState } from "../../node/index.js";
import { EdgeError } from "../errors.js";
import { writeBootFile, writeEvidence } from "./boot-state.js";
import type { BootFile, EpochEvidence } from "./boot-state.js";
import type { OsIdentity } from "./identity.js";
import type { VerifiedRuntime } from "./manifest.js";
import { readEnvelope, stagedRuntimePaths, verifyRuntime } from "./stage.js";
import { installRuntimeDir } from "./install-dir.js";
import { recoverInterruptedSwap } from "./tree.js";

/** Test seams: called between steps, so a test can act at the exact moment the seed's TOCTOU rule is about. */
export interface ReconstructionHooks {
  /** After the staged runtime was read and verified, before anything is installed. */
  afterVerify?: (v: VerifiedRuntime) => Promise<void> | void;
}

export interface ReconstructOptions {
  stateRoot: string;
  /** Where the runtime is reinstalled; undefined = this node has no runtime to reinstall (evidence says installed: null). */
  installDir: string | undefined;
  previous: BootFile;
  identity: OsIdentity;
  fingerprint: string;
  clock?: Clock;
  hooks?: ReconstructionHooks;
}

/**
 * RunReconstruction after an OS replacement. Order (each step durable before
 * the next; the fingerprint file, written LAST, is the commit point, so a
 * kill anywhere before it makes the next precheck run all of it again):
 *  1. the activation and policy slots named by state.json are checked in
 *     place (bundles re-verified and compiled, the active release present and
 *     intact in the release store): the node must come back on them;
 *  2. the staged runtime is read ONCE into memory and verified (signature
 *     under the node's trust root, every file's digest);
 *  3. exactly those in-memory bytes are installed (a new tree inside the
 *     install dir → fsync → its `current` symlink renamed: install-dir.ts);
 *  4. the evidence of the new epoch is written (the old moves to previous);
 *  5. the fingerprint file with boot_epoch + 1.
 * The telemetry WAL is never opened: it is the runtime's, and survives as it is.
 */
export async function reconstruct(opts: ReconstructOptions): Promise<EpochEvidence> {
  const at = dateOf(opts.clock ?? systemClock).toISOString();
  const restored = await step("restoring the activation and policy slots", () => checkSlots(opts.stateRoot));
  let installed: EpochEvidence["installed"] = null;
  if (opts.installDir !== undefined) {
    const dir = opts.installDir;
    const v = await step("verifying the staged runtime", async () => {
      const paths = stagedRuntimePaths(opts.stateRoot);
      // `edged runtime stage` killed between its two renames left the staged runtime under its old-* name.
      await recoverInterruptedSwap(paths.dir);
      return verifyRuntime(opts.stateRoot, await readEnvelope(paths.envelope), paths.files);
    });
    await opts.hooks?.afterVerify?.(v);
    await step(`installing the runtime into ${dir}`, () => installRuntimeDir(dir, v.files.map((f) => ({ path: f.entry.path, bytes: f.bytes, mode: f.entry.mode })), { outside: opts.stateRoot }));
    crashPoint("reconstruct-after-install");
    const files = await Promise.all(v.files.map(async (f) => ({ path: f.entry.path, blake3: `blake3:${await blake3(f.bytes, 256)}` })));
    installed = { manifest_digest: v.manifestDigest, install_dir: dir, files };
  }
  const epoch = opts.previous.boot_epoch + 1;
  const evidence: EpochEvidence = { epoch, previous_fingerprint: opts.previous.composite_hash, new_fingerprint: opts.fingerprint, reconstructed_at: at, installed, restored };
  await step("writing the epoch evidence", () => writeEvidence(opts.stateRoot, evidence));
  crashPoint("reconstruct-after-evidence");
  await step("committing the new fingerprint", () => writeBootFile(opts.stateRoot, { composite_hash: opts.fingerprint, boot_epoch: epoch, captured_at: at, identity: { ...opts.identity } }));
  return evidence;
}

async function step<T>(what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw new EdgeError("RECONSTRUCTION_FAILED", `reconstruction failed ${what}: ${messageOf(e)}`, { cause: e });
  }
}

/**
 * The node's activation and policy slots, checked where they are (they live in
 * the state root and survived the OS replacement): each slot's bundle must be
 * in the bundle store with its digest and compile; the active release's image
 * must be in the release store, intact. Nothing is rewritten.
 */
async function checkSlots(stateRoot: string): Promise<EpochEvidence["restored"]> {
  const s = await readNodeState(stateRoot);
  for (const slot of [s.current, s.lkg]) if (slot) await openSlot(stateRoot, slot);
  if (s.activation) {
    const store = await openReleaseStore(stateRoot);
    const image = s.activation.image_digest;
    if (!(await store.hasBlob(image))) throw new EdgeError("RECONSTRUCTION_FAILED", `the active release (sequence ${s.activation.sequence}, image ${image}) is not in the node's release store`);
    await store.verifyBlob(image);
  }
  return { statement_digest: s.activation?.statement_digest ?? null, policy_current: s.current?.digest ?? null, policy_lkg: s.lkg?.digest ?? null };
}
