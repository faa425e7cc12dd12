import { mkdir, readFile } from "node:fs/promises";
import { z } from "zod";
import { errnoCode, fieldProblems, withFileLock, writeFileAtomic, crashPoint, formatProblems } from "../lib/index.js";
import { policySlotSchema } from "../policy/index.js";
import { NodeError } from "./errors.js";
import { initStateRoot } from "./init.js";
import { stateRootPaths } from "./layout.js";

const digest = z.string().regex(/^sha256:[a-f0-9]{64}$/);

/** What `runtime activate` committed, together with the policy it loaded. */
const activationSchema = z.strictObject({
  ref: z.string().min(1),
  artifact_digest: digest,
  lock_fingerprint: z.string().regex(/^blake3:[a-f0-9]{64}$/),
  policy_digest: digest,
  sequence: z.number().int().positive(),
  rollback: z.boolean(),
  signed_at: z.string().min(1),
  activated_at: z.string().min(1),
});

const stateSchema = z.strictObject({
  version: z.literal(1),
  /** Increments on every commit, so watchers notice a change cheaply. */
  generation: z.number().int().nonnegative(),
  current: policySlotSchema.optional(),
  lkg: policySlotSchema.optional(),
  activation: activationSchema.optional(),
  /** Highest release sequence ever activated: rollback protection survives policy loads and restarts. */
  highest_sequence: z.number().int().nonnegative(),
  /** The release activated at `highest_sequence`: the only one that may carry that sequence. */
  highest_artifact_digest: digest.optional(),
});

export type ActivationRecord = z.infer<typeof activationSchema>;
export type NodeState = z.infer<typeof stateSchema>;

export const EMPTY_STATE: NodeState = Object.freeze({ version: 1, generation: 0, highest_sequence: 0 });

/** Reads the node state; a missing file is the empty first-boot state, anything unreadable fails hard. */
export async function readNodeState(stateRoot: string): Promise<NodeState> {
  const path = stateRootPaths(stateRoot).state;
  let raw: string;
  try {
    raw = await readFile(path, "utf8");
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return EMPTY_STATE;
    throw new NodeError("POLICY_STATE_INVALID", `cannot read ${path}: ${errnoCode(e) ?? String(e)}`, { cause: e });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch (e) {
    throw new NodeError("POLICY_STATE_INVALID", `${path} is not JSON`, { cause: e });
  }
  const r = stateSchema.safeParse(doc);
  if (!r.success) {
    const fields = fieldProblems(r.error.issues);
    throw new NodeError("POLICY_STATE_INVALID", `${path} is malformed: ${formatProblems(fields)}`, { details: { fields } });
  }
  return r.data;
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
