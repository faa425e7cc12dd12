import { mkdir } from "node:fs/promises";
import { withFileLock, writeFileAtomic, crashPoint } from "../lib/index.js";
import { NodeError } from "./errors.js";
import { initStateRoot } from "./init.js";
import { parseNodeFile, readOptionalText } from "./json-file.js";
import { stateRootPaths } from "./layout.js";
import { EMPTY_STATE, migrateState, stateSchema } from "./state-schema.js";
import type { NodeState } from "./state-schema.js";

export type { ActivationRecord, EquivocationRecord, KeyRotationRecord, NodeState } from "./state-schema.js";
export { EMPTY_STATE, MAX_EQUIVOCATIONS, MAX_KEY_ROTATIONS } from "./state-schema.js";

/**
 * Reads the node state; a missing file is the empty first-boot state, anything
 * unreadable fails hard. A version-1 file (before release statements) is
 * migrated on read; the next commit writes it back as version 2.
 */
export async function readNodeState(stateRoot: string): Promise<NodeState> {
  const path = stateRootPaths(stateRoot).state;
  const raw = await readOptionalText(path, "POLICY_STATE_INVALID");
  return raw === undefined ? EMPTY_STATE : parseNodeFile(path, raw, stateSchema, "POLICY_STATE_INVALID", migrateState);
}

/**
 * Read-modify-write of the node state under the state lock; `change` returns
 * the next state (or throws to change nothing) and may do I/O first (store a
 * bundle). The write is one atomic rename of `state.json`: everything a policy
 * load or an activation changes is committed by it, or nothing is.
 * `afterCommit` runs still holding the lock (garbage collection must not race
 * another writer's uncommitted files).
 */
export async function commitNodeState(stateRoot: string, change: (s: NodeState) => NodeState | Promise<NodeState>, afterCommit?: (s: NodeState) => Promise<void>): Promise<NodeState> {
  const p = stateRootPaths(stateRoot);
  await mkdir(p.policy, { recursive: true });
  return withFileLock(p.stateLock, async () => {
    await initStateRoot(stateRoot);
    const next = await change(await readNodeState(stateRoot));
    const committed: NodeState = { ...next, generation: next.generation + 1 };
    stateSchema.parse(committed);
    crashPoint("state-before-commit");
    await writeFileAtomic(p.state, `${JSON.stringify(committed, null, 2)}\n`);
    crashPoint("state-after-commit");
    await afterCommit?.(committed);
    return committed;
  }, {
    onTimeout: (pid) => new NodeError("POLICY_STATE_LOCKED", `the node state is locked by process ${pid ?? "unknown"} (${p.stateLock})`),
  });
}
