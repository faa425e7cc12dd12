import { Wal, nodeWalFs, walPaths } from "../telemetry/index.js";
import { stateRootPaths, walSteadyStateEvidence } from "./layout.js";

/**
 * Prepares a state root before anything else is written to it: the telemetry
 * WAL must exist with its safe point first, or a WAL lost later would look
 * like a first run next to the node's other state (seed 001 §3.4). Idempotent
 * and cheap once done; a runtime holding the WAL open has already done it.
 */
export async function initStateRoot(root: string): Promise<void> {
  const walDir = stateRootPaths(root).telemetryWal;
  if (await nodeWalFs.exists(walPaths(walDir).safeSeq)) return;
  await Wal.initialize(walDir, { otherState: walSteadyStateEvidence(root) });
}

/** What a node's WAL is opened with: its directory and the node's steady-state evidence. */
export function nodeWalLocation(root: string): { dir: string; otherState: string[] } {
  return { dir: stateRootPaths(root).telemetryWal, otherState: walSteadyStateEvidence(root) };
}
