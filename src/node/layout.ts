import { join } from "node:path";

/**
 * Where everything lives under a node's state root: the persistent partition
 * that survives an OS replacement. This table is the only place that joins a
 * path under the state root, so every domain agrees on the layout.
 */
export interface StateRootPaths {
  root: string;
  /** Policy slots, the bundle store and the node state file. */
  policy: string;
  /** `state.json`: policy slots, activation record, highest release sequence (one atomic commit). */
  state: string;
  /** The advisory lock held while `state.json` is read-modified-written. */
  stateLock: string;
  /** Content-addressed policy bundles named by the slots (`sha256-<hex>.tar.gz`). */
  bundles: string;
  /** The node's trust root (`runtime trust set`): trusted release keys, threshold, channel, repository. */
  trust: string;
  /** Activation artefacts. */
  activation: string;
  /** Verified releases kept on the node (an OCI image layout), so it can re-activate offline. */
  releaseStore: string;
  /** The telemetry write-ahead log (seed 001); its lock and generation lie beside it, `telemetry/wal.lock` and `telemetry/wal.generation` (docs/wal.md "On-disk modes"). */
  telemetryWal: string;
  /** The tool server's credentials (directory mode 0700). */
  auth: string;
  /** `auth/tokens.json` (mode 0600): per-agent bearer tokens, SHA-256 hashes only, never a token (src/node/tokens.ts). */
  tokens: string;
  /** The advisory lock held while `tokens.json` is read-modified-written. */
  tokensLock: string;
  /** `control-plane.json` (mode 0600): the control plane this node enrolled with, its node id and node credential (src/node/control-plane.ts). */
  controlPlane: string;
  /** `edge/incoming`: relayed releases unpacked here (`<sha256 of the segment>/`) only while they are verified and activated. */
  edgeIncoming: string;
  /** `edge/relay/ledger.lmdb` (+ `ledger.lmdb-lock`): the edge relay's delivery ledger and receiver inbox (src/edge/relay/ledger.ts). */
  relayLedger: string;
  /** The edge daemon's content-addressed segment store (src/edge/storage): `<sha256-hex>.<kind>` files and `evictions.log`. */
  edgeSegments: string;
  /** `bootstrap/os_fingerprint.json`: the OS identity's fingerprint and the boot epoch (edged precheck; its commit point). */
  osFingerprint: string;
  /** The advisory lock held by `edged precheck` while it compares, reconstructs and commits. */
  bootstrapLock: string;
  /** `epoch/current`: the evidence (`evidence.json`) of the latest reconstruction. */
  epochCurrent: string;
  /** `epoch/previous`: the evidence of the reconstruction before it. */
  epochPrevious: string;
  /** `epoch/abandoned`: evidence of a reconstruction that never committed (moved out of `epoch/current` when the node came back on its old OS). */
  epochAbandoned: string;
  /** `runtime/`: the staged, verified runtime (`runtime.dsse.json` + `files/`) that a reconstruction reinstalls. */
  runtimeStaging: string;
  /** `bootstrap/runtime_sequence.json`: the highest runtime manifest sequence ever staged (a lower one is a rollback, refused). */
  runtimeSequence: string;
  /** `edge/edged.lock`: held by the one edged that runs on this state root (src/edge/daemon). */
  edgeDaemonLock: string;
}

export function stateRootPaths(root: string): StateRootPaths {
  const policy = join(root, "policy");
  const activation = join(root, "activation");
  const auth = join(root, "auth");
  return {
    root,
    policy,
    state: join(policy, "state.json"),
    stateLock: join(policy, "state.lock"),
    bundles: join(policy, "bundles"),
    trust: join(root, "trust.json"),
    activation,
    releaseStore: join(activation, "store"),
    telemetryWal: join(root, "telemetry", "wal"),
    auth,
    tokens: join(auth, "tokens.json"),
    tokensLock: join(auth, "tokens.lock"),
    controlPlane: join(root, "control-plane.json"),
    edgeIncoming: join(root, "edge", "incoming"),
    relayLedger: join(root, "edge", "relay", "ledger.lmdb"),
    edgeSegments: join(root, "edge", "segments"),
    osFingerprint: join(root, "bootstrap", "os_fingerprint.json"),
    bootstrapLock: join(root, "bootstrap", "precheck.lock"),
    epochCurrent: join(root, "epoch", "current"),
    epochPrevious: join(root, "epoch", "previous"),
    epochAbandoned: join(root, "epoch", "abandoned"),
    runtimeStaging: join(root, "runtime"),
    runtimeSequence: join(root, "bootstrap", "runtime_sequence.json"),
    edgeDaemonLock: join(root, "edge", "edged.lock"),
  };
}

/**
 * THE steady-state list of the node (seed 001 §3.4, WS-4 extension protocol):
 * node state whose presence means the node has run before, so a telemetry WAL
 * without its safe point is a loss to fail hard on, not a first run. Every new
 * kind of persisted node state MUST be added here; the WAL is given this list
 * by its callers (initStateRoot, the runtime) and keeps no list of node state
 * of its own (only the three names seed 001 fixes inside the WAL directory).
 * `telemetry.pos` is deliberately absent: a consumer marker is never evidence (S11).
 * So is `auth/tokens.json`: tokens are issued before a node first runs (the
 * quickstart creates one before starting the runtime), so their presence says
 * nothing about whether the WAL ever held an entry. `control-plane.json` neither:
 * a node enrolls before its first start. Nor `edge/segments/`: a peer's relay
 * may store segments on a node whose runtime never ran (the edge daemon and the
 * runtime start independently), so segments say nothing about the WAL. Nor the
 * bootstrap files (`os_fingerprint.json`, `epoch/`, `runtime/`): `edged precheck`
 * writes them before the runtime first runs.
 */
export function walSteadyStateEvidence(root: string): string[] {
  const p = stateRootPaths(root);
  return [p.state, p.trust, p.activation];
}

/** What a node's WAL is opened with: its directory and the node's steady-state list. */
export function nodeWalLocation(root: string): { dir: string; otherState: string[] } {
  return { dir: stateRootPaths(root).telemetryWal, otherState: walSteadyStateEvidence(root) };
}

/** Where a node keeps its telemetry WAL. */
export function telemetryWalDir(root: string): string {
  return stateRootPaths(root).telemetryWal;
}

/** The policy part of the layout (kept under this name for the callers that knew it from `policy`). */
export function policyPaths(root: string): { dir: string; state: string; lock: string; bundles: string } {
  const p = stateRootPaths(root);
  return { dir: p.policy, state: p.state, lock: p.stateLock, bundles: p.bundles };
}

/** The stored file of a bundle, by its digest (`sha256:<hex>` → `sha256-<hex>.tar.gz`). */
export function bundlePath(root: string, bundleDigest: string): string {
  return join(stateRootPaths(root).bundles, bundleFileName(bundleDigest));
}

export function bundleFileName(bundleDigest: string): string {
  return `${bundleDigest.replace(":", "-")}.tar.gz`;
}

/** Where verified releases are kept on the node (an OCI layout). */
export function releaseStorePath(root: string): string {
  return stateRootPaths(root).releaseStore;
}
