/**
 * Release relay ("seed once, update everywhere" without the control plane):
 * a node packs its ACTIVE release into a `release` segment; a peer receiving
 * one unpacks it into scratch space under its state root and activates it
 * through src/runtime activateRelease, so it is verified against the peer's
 * OWN trust root under exactly the rules of a registry pull (keys, threshold,
 * channel, repository, sequence floor, expiry, equivocation).
 */
import { mkdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { OciError, parseReference } from "../oci/index.js";
import { ArchiveError } from "../archive/index.js";
import { requireTrustRoot, stateRootPaths } from "../node/index.js";
import { activateRelease } from "../runtime/index.js";
import type { ActivationResult } from "../runtime/index.js";
import type { ArchiveLimits } from "../archive/index.js";
import { ExitCodes, sha256Digest } from "../lib/index.js";
import type { Clock } from "../lib/index.js";
import { EDGE_DEFAULTS } from "./config/schema.js";
import { EdgeError } from "./errors.js";
import { readRelayedLayout, relayedReleaseLimits, writeLayout } from "./release-relay-unpack.js";

export { packActiveRelease } from "./release-relay-pack.js";
export type { PackedRelease, PackOptions } from "./release-relay-pack.js";
export { describeRelayedRelease, relayedReleaseLimits } from "./release-relay-unpack.js";
export type { RelayedReleaseClaim } from "./release-relay-unpack.js";
export { watchActiveRelease } from "./release-relay-watch.js";
export type { ActiveReleaseWatch, ActiveReleaseWatchOptions } from "./release-relay-watch.js";

/** Relayed activations in progress, by scratch folder: each waits for the one before. */
const running = new Map<string, Promise<unknown>>();

export interface ActivateRelayedOptions {
  stateRoot: string;
  /** The segment's bytes (a `.tar.gz` from {@link packActiveRelease} on another node). */
  bytes: Uint8Array;
  clock?: Clock;
  /** Where the archive is unpacked (a `<sha256>/` directory inside it). Default `{state_root}/edge/incoming`. */
  workDir?: string;
  /** Largest archive accepted (the relay's max_segment_bytes). Default {@link EDGE_DEFAULTS}.relay.maxSegmentBytes. */
  maxBytes?: number;
  /** Reader limits; default {@link relayedReleaseLimits}(maxBytes). */
  limits?: ArchiveLimits;
  /** Passed to activateRelease (policy compilation and runtime version checks). */
  compile?: Parameters<typeof activateRelease>[0]["compile"];
  runtimeVersion?: string;
}

/**
 * Activates a relayed release on this node. The archive is read as hostile
 * input (size, bomb, traversal, links, devices: RELAYED_RELEASE_INVALID,
 * exit 4, nothing written), unpacked into `{workDir}/<sha256 of the bytes>/`,
 * and activated with the ref `oci:<dir>:<tag>`: a verification error (exit 4)
 * passes through unchanged (a tampered byte gets the code a registry pull
 * gets); an OCI or archive error from the segment's own layout becomes
 * RELAYED_RELEASE_INVALID (exit 4, cause kept), so it is final, never retried. The scratch directory is removed afterwards,
 * on success and on failure. Calls sharing a scratch folder run one at a time
 * (the same segment may arrive from two peers at once); a directory left by a
 * crash is replaced.
 */
export async function activateRelayedRelease(opts: ActivateRelayedOptions): Promise<ActivationResult> {
  const work = resolve(opts.workDir ?? stateRootPaths(opts.stateRoot).edgeIncoming);
  // The same segment can arrive from two peers at once: one at a time per scratch folder (in this process; edged holds the state root alone).
  const previous = running.get(work) ?? Promise.resolve();
  const mine = previous.catch(() => undefined).then(() => activateOne(opts, work));
  const settled = mine.catch(() => undefined);
  running.set(work, settled);
  void settled.then(() => {
    if (running.get(work) === settled) running.delete(work);
  });
  return mine;
}


async function activateOne(opts: ActivateRelayedOptions, work: string): Promise<ActivationResult> {
  const limits = opts.limits ?? relayedReleaseLimits(opts.maxBytes ?? EDGE_DEFAULTS.relay.maxSegmentBytes);
  // A node that trusts nobody refuses before anything is read or written (activateRelease's first check).
  await requireTrustRoot(opts.stateRoot);
  const layout = await readRelayedLayout(opts.bytes, limits);
  const dir = join(work, sha256Digest(opts.bytes).slice(7));
  await mkdir(work, { recursive: true, mode: 0o700 });
  await rm(dir, { recursive: true, force: true });
  try {
    await writeLayout(dir, layout);
    return await activateRelease({
      ref: parseReference(`oci:${dir}:${layout.tag}`), stateRoot: opts.stateRoot,
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.compile ? { compile: opts.compile } : {}),
      ...(opts.runtimeVersion ? { runtimeVersion: opts.runtimeVersion } : {}),
    });
  } catch (e) {
    throw fromContent(e);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The layout activateRelease reads is our own scratch copy of the segment's
 * bytes, so an OCI or archive error from it (a blob index.json names but the
 * archive lacks, a manifest that does not parse, a layer that is not a tar)
 * is the segment's fault and will never heal: RELAYED_RELEASE_INVALID (exit
 * 4, final), the original error kept as the cause. Errors already exit 4
 * (a digest mismatch, a signature) keep their own code, as from a registry pull.
 */
function fromContent(e: unknown): unknown {
  const content = e instanceof OciError || e instanceof ArchiveError;
  if (!content || e.exitCode === ExitCodes.verification) return e;
  return new EdgeError("RELAYED_RELEASE_INVALID", `the relayed segment is not a release this node can read: ${e.code}: ${e.message}; nothing was activated`, {
    cause: e, details: { content_code: e.code },
  });
}
