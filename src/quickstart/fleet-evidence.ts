import { LIFECYCLE_EVENT_TYPE } from "../cpapi/index.js";
import type { CpClient, StoredEvent } from "../cpapi/index.js";
import { telemetryWalDir } from "../node/index.js";
import { readCommitted } from "../telemetry/index.js";

/** One ack of a node's path as GET /v1/nodes/{id} shows it. */
export interface NodeAck {
  release_id: string;
  phase: string;
  detail: string;
  lock_fingerprint: string | null;
  at: string;
}

/** The node as the control plane shows it, with its path (acks in arrival order). */
export async function nodeWithAcks(cp: CpClient, nodeId: string): Promise<{ release_id: string | null; activation_sequence: number | null; lock_fingerprint: string | null; acks: NodeAck[] }> {
  const n = await cp.getNode(nodeId);
  const acks = Array.isArray(n.acks) ? (n.acks as NodeAck[]) : [];
  return { release_id: n.release_id, activation_sequence: n.activation_sequence, lock_fingerprint: n.lock_fingerprint, acks };
}

/** "polled → candidate_detected → … → activated" for one release. */
export function pathOf(acks: readonly NodeAck[], releaseId: string): string[] {
  return acks.filter((a) => a.release_id === releaseId).map((a) => a.phase);
}

/** One lifecycle event as the node wrote it in its own WAL. */
export interface WalLifecycle {
  seq: number;
  phase: string;
  release_id: string | null;
  lock_fingerprint: string | null;
}

/** Decisions the node recorded, counted per (release stamped on them, policy that decided: `name@version`). */
export interface DecisionCount {
  release_id: string | null;
  policy: string;
  allow: number;
  deny: number;
}

/** Lifecycle events and decision counts from the node's WAL, read-only: safe beside the running runtime. */
export async function readNodeWal(stateRoot: string): Promise<{ lifecycle: WalLifecycle[]; decisions: DecisionCount[] }> {
  const { entries, inspection } = await readCommitted(telemetryWalDir(stateRoot));
  if (inspection.fail_hard) throw new Error(`the node's WAL fails hard (${inspection.fail_hard})`);
  const lifecycle: WalLifecycle[] = [];
  const decisions = new Map<string, DecisionCount>();
  for (const { seq, event } of entries) {
    if (event.type === LIFECYCLE_EVENT_TYPE) {
      lifecycle.push({ seq, phase: String(event.phase), release_id: str(event.release_id), lock_fingerprint: str(event.lock_fingerprint) });
    } else if (event.type === "ai.policy.decision" && event.follow_up !== true) {
      const policy = (str(event.policy_ref) ?? "none").split(" ")[0] ?? "none";
      const key = `${str(event.release_id) ?? "none"} ${policy}`;
      const d = decisions.get(key) ?? { release_id: str(event.release_id), policy, allow: 0, deny: 0 };
      if (event.decision === "deny") d.deny += 1;
      else d.allow += 1;
      decisions.set(key, d);
    }
  }
  return { lifecycle, decisions: [...decisions.values()] };
}

/** Every lifecycle event the control plane received from one node (all pages). */
export async function cpLifecycleEvents(cp: CpClient, nodeId: string): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 100; page++) {
    const p = await cp.queryEvents({ node_id: nodeId, event_type: LIFECYCLE_EVENT_TYPE, limit: 1000, ...(cursor !== undefined ? { cursor } : {}) });
    out.push(...p.events);
    if (p.next_cursor === null) break;
    cursor = p.next_cursor;
  }
  return out;
}

/**
 * The node's own WAL and the control plane's events agree on a release: each
 * lifecycle event the node wrote for it is on the control plane under the id
 * `<node>:wal:<generation>:<seq>` with the same phase, release id and lock
 * fingerprint; and the phases from verify_passed on carry `fingerprint`, the
 * one the publisher computed for the lock it signed. Returns what does not
 * hold (empty: verified), and the matched phases.
 */
export function matchLifecycle(wal: readonly WalLifecycle[], cpEvents: readonly StoredEvent[], releaseId: string, fingerprint: string): { problems: string[]; phases: string[] } {
  const problems: string[] = [];
  const mine = wal.filter((e) => e.release_id === releaseId);
  const bySeq = new Map<number, StoredEvent>();
  for (const e of cpEvents) {
    const m = /:wal:[0-9a-f]+:(\d+)$/.exec(e.event_id);
    if (m) bySeq.set(Number(m[1]), e);
  }
  for (const w of mine) {
    const c = bySeq.get(w.seq);
    const phase = c?.attributes?.phase;
    if (!c) problems.push(`WAL seq ${w.seq} (${w.phase}) is not on the control plane`);
    else if (phase !== w.phase || c.release_id !== w.release_id || (c.lock_fingerprint ?? null) !== w.lock_fingerprint) {
      problems.push(`WAL seq ${w.seq}: the node wrote ${w.phase}/${w.release_id ?? "-"}/${w.lock_fingerprint ?? "-"}, the control plane has ${String(phase)}/${c.release_id ?? "-"}/${c.lock_fingerprint ?? "-"}`);
    }
    const verified = ["verify_passed", "activation_started", "activated"].includes(w.phase);
    if (verified && w.lock_fingerprint !== fingerprint) problems.push(`${w.phase} names lock ${w.lock_fingerprint ?? "none"}, not the signed lock ${fingerprint}`);
  }
  const phases = mine.map((e) => e.phase);
  if (!phases.includes("activated")) problems.push(`no activated event in the WAL for ${releaseId}`);
  return { problems, phases };
}

function str(v: unknown): string | null {
  return typeof v === "string" ? v : null;
}
