import { Wal, nodeWalFs, walPaths } from "../telemetry/index.js";
import { nodeWalLocation } from "./layout.js";

/**
 * Prepares a state root before anything else is written to it: the telemetry
 * WAL must exist with its safe point first, or a WAL lost later would look
 * like a first run next to the node's other state (seed 001 §3.4). Idempotent
 * and cheap once done; a runtime holding the WAL open has already done it.
 */
export async function initStateRoot(root: string): Promise<void> {
  const { dir, otherState } = nodeWalLocation(root);
  if (await nodeWalFs.exists(walPaths(dir).safeSeq)) return;
  await Wal.initialize(dir, { otherState });
}
