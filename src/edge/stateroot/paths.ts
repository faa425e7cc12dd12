import { join } from "node:path";

/**
 * Where everything lives under a node's state root: the persistent partition
 * that survives an OS replacement. One place, so every domain agrees.
 */
export interface StateRootPaths {
  root: string;
  /** Policy slots, bundles and the node state file (src/policy). */
  policy: string;
  /** Verified release store and activation artefacts (src/runtime). */
  activation: string;
  /** The telemetry write-ahead log (src/telemetry). */
  telemetryWal: string;
}

export function stateRootPaths(root: string): StateRootPaths {
  return {
    root,
    policy: join(root, "policy"),
    activation: join(root, "activation"),
    telemetryWal: join(root, "telemetry", "wal"),
  };
}

/** Node state whose presence makes the telemetry WAL "steady" (seed 001 §3.4, WS-4 extension protocol). */
export function walSteadyStateEvidence(root: string): string[] {
  const p = stateRootPaths(root);
  return [join(p.policy, "state.json"), p.activation];
}
