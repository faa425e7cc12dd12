import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { errnoCode, fieldProblems, withFileLock, writeFileAtomic, crashPoint, formatProblems } from "../lib/index.js";
import { PolicyError } from "./errors.js";
import { initStateRoot, stateRootPaths } from "../edge/index.js";

const digest = z.string().regex(/^sha256:[a-f0-9]{64}$/);

const slotSchema = z.strictObject({
  digest,
  name: z.string().min(1),
  version: z.string().min(1),
  loaded_at: z.string().min(1),
});

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
  current: slotSchema.optional(),
  lkg: slotSchema.optional(),
  activation: activationSchema.optional(),
  /** Highest release sequence ever activated: rollback protection survives policy loads and restarts. */
  highest_sequence: z.number().int().nonnegative(),
  /** The release activated at `highest_sequence`: the only one that may carry that sequence. */
  highest_artifact_digest: digest.optional(),
});

export type PolicySlot = z.infer<typeof slotSchema>;
export type ActivationRecord = z.infer<typeof activationSchema>;
export type NodeState = z.infer<typeof stateSchema>;

export const EMPTY_STATE: NodeState = Object.freeze({ version: 1, generation: 0, highest_sequence: 0 });

/**
 * Paths under the state root. Everything the policy manager and activation
 * change is committed by one atomic rename of `state.json`; bundles are
 * content-addressed files written (durably) before the commit that names them.
 */
export function policyPaths(stateRoot: string): { dir: string; state: string; lock: string; bundles: string } {
  const dir = stateRootPaths(stateRoot).policy;
  return { dir, state: join(dir, "state.json"), lock: join(dir, "state.lock"), bundles: join(dir, "bundles") };
}

export function bundlePath(stateRoot: string, bundleDigest: string): string {
  return join(policyPaths(stateRoot).bundles, `${bundleDigest.replace(":", "-")}.tar.gz`);
}

/** Reads the node state; a missing file is the empty first-boot state, anything unreadable fails hard. */
export async function readNodeState(stateRoot: string): Promise<NodeState> {
  const path = policyPaths(stateRoot).state;
  let raw: string;
  try {
    raw = await readFile(path, "utf8");
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return EMPTY_STATE;
    throw new PolicyError("POLICY_STATE_INVALID", `cannot read ${path}: ${errnoCode(e) ?? String(e)}`, { cause: e });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch (e) {
    throw new PolicyError("POLICY_STATE_INVALID", `${path} is not JSON`, { cause: e });
  }
  const r = stateSchema.safeParse(doc);
  if (!r.success) {
    const fields = fieldProblems(r.error.issues);
    throw new PolicyError("POLICY_STATE_INVALID", `${path} is malformed: ${formatProblems(fields)}`, { details: { fields } });
  }
  return r.data;
}

/**
 * Read-modify-write of the node state under the state lock; `change` returns
 * the next state (or throws to change nothing) and may do I/O first (store a
 * bundle). The write is one atomic rename. `afterCommit` runs still holding the
 * lock (garbage collection must not race another writer's uncommitted files).
 */
export async function commitNodeState(stateRoot: string, change: (s: NodeState) => NodeState | Promise<NodeState>, afterCommit?: (s: NodeState) => Promise<void>): Promise<NodeState> {
  const p = policyPaths(stateRoot);
  await mkdir(p.dir, { recursive: true });
  return withFileLock(p.lock, async () => {
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
    onTimeout: (pid) => new PolicyError("POLICY_STATE_LOCKED", `the node state is locked by process ${pid ?? "unknown"} (${p.lock})`),
  });
}
