import { join } from "node:path";
import { formatReference } from "../oci/index.js";
import type { CpClient, Rollout } from "../cpapi/index.js";
import { keepAgentsBusy } from "./agents.js";
import { nodeWithAcks, pathOf, readNodeWal } from "./fleet-evidence.js";
import type { DecisionCount } from "./fleet-evidence.js";
import type { FleetNode } from "./fleet.js";
import type { FleetRelease, Publisher } from "./fleet-releases.js";
import type { Record_ } from "./steps.js";
import { StepFailed, TutorialAborted, sleep, waitFor } from "./wait.js";

export interface RolloutContext {
  cp: CpClient;
  publisher: Publisher;
  examplesDir: string;
  nodes: FleetNode[];
  good: { release: FleetRelease; id: string };
  record: Record_;
  log: (line: string) => void;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Test hook: create the plan without its behaviour gate (the tutorial must then FAIL). */
  withoutGate: boolean;
}

export interface RolloutOutcome {
  plan_id: string;
  phase: string;
  reason: string;
  canary: string;
  release_id: string;
  rollback_release_id: string;
  releases: { label: string; release_id: string; sequence: number; lock_fingerprint: string }[];
  /** The plan's status lines as they changed. */
  history: string[];
}

/** The behaviour gate of the canary stage: the canary's policy-deny rate at most twice the rest's. */
export const DENY_GATE = { kind: "behaviour", metric: "deny_rate", comparison: "ratio", threshold: 2, min_samples: 20, window_seconds: 600 } as const;

/**
 * Step 4: release 2 (agents whose calls its own policy denies) goes out with a
 * plan — a canary batch of one node, the behaviour gate, then the rest — and
 * release 1's content re-signed at sequence 3 as the rollback target. Both are
 * published as standby releases: no node sees them as the channel's latest,
 * only through the plan. The gate fails on the canary's deny rate, the plan
 * rolls back by itself, the canary returns to release 1's content, and the
 * two other nodes never run release 2.
 */
export async function misbehavingRollout(c: RolloutContext): Promise<RolloutOutcome> {
  const bad = await c.publisher.release("release 2", "v2", 2, join(c.examplesDir, "tutorial-02", "release-2", "agent"), join(c.examplesDir, "tutorial-02", "release-2", "policies"), "2.0.0");
  const back = await c.publisher.rollbackOf("rollback target", c.good.release, "v3", 3);
  const badId = await publishStandby(c.cp, bad, "tutorial 02: release 2 (agent 2.0; tool.echo scoped to the ops console)");
  c.record("release 2", `${badId}: ${formatReference(bad.ref)} sequence 2, ${bad.policy} (tool.echo only for Agent::"ops-console"), lock ${bad.lockFingerprint}; published as standby`);
  const backId = await publishStandby(c.cp, back, "tutorial 02: release 1's content at sequence 3, the rollout's rollback target");
  c.record("rollback target", `${backId}: release 1's content re-signed at sequence 3 (above the plan's 2: a node never goes below what it runs), ${back.policy}, lock ${back.lockFingerprint}; published as standby`, back.lockFingerprint === c.good.release.lockFingerprint);
  const latest = await c.cp.latestRelease("stable");
  const latestId = latest.status === "release" ? latest.release.release_id : "none";
  c.record("channel latest", `stable's latest is still ${latestId} (release 1): standby releases reach nodes only through a plan`, latestId === c.good.id);

  const stopAgents = keepAgentsBusy(c.nodes.map((n) => ({ url: n.url, token: n.agentToken, tally: n.tally })), 150);
  try {
    const plan = await c.cp.createRollout({
      release_id: badId, previous_release_id: backId, target: { nodes: c.nodes.map((n) => n.nodeId) }, max_concurrency: 1,
      stages: [{ stage_id: "canary", batch: { count: 1 }, gates: c.withoutGate ? [] : [DENY_GATE] }, { stage_id: "fleet", batch: { percent: 100 }, gates: [] }],
      failure_budget: { max_failures: 0 }, stuck_timeout_seconds: 60, late_joiners: "ignore", notes: "tutorial 02",
    });
    const canary = plan.nodes.find((n) => n.batch === 0)?.node_id ?? "?";
    c.record("rollout plan", `${plan.plan_id}: ${badId} to ${plan.nodes.length} nodes, canary batch of 1 (${canary}), gate deny_rate ≤ ${DENY_GATE.threshold}× the rest's (≥ ${DENY_GATE.min_samples} decisions each side)${c.withoutGate ? " — WITHOUT its gate (test hook)" : ""}, then the rest; rollback target ${backId}`);
    const history: string[] = [];
    const end = await watchPlan(c, plan.plan_id, history);
    const releases = [
      { label: bad.label, release_id: badId, sequence: bad.sequence, lock_fingerprint: bad.lockFingerprint },
      { label: back.label, release_id: backId, sequence: back.sequence, lock_fingerprint: back.lockFingerprint },
    ];
    const outcome: RolloutOutcome = { plan_id: end.plan_id, phase: end.phase, reason: end.reason, canary, release_id: badId, rollback_release_id: backId, releases, history };
    await stopAgents();
    await checkAfter(c, outcome, bad, back);
    return outcome;
  } finally {
    await stopAgents();
  }
}

async function publishStandby(cp: CpClient, r: FleetRelease, notes: string): Promise<string> {
  const published = await cp.publishRelease({ statement: r.envelope as never, image: formatReference(r.ref), channel: "stable", notes, standby: true });
  return published.release_id;
}

/** Prints the plan each time it moves, until it is terminal; anything but rolled_back FAILS the step. */
async function watchPlan(c: RolloutContext, planId: string, history: string[]): Promise<Rollout> {
  const end = Date.now() + c.timeoutMs;
  let last = "";
  let gateSeen = false;
  let canarySeen = false;
  for (;;) {
    if (c.signal?.aborted) throw new TutorialAborted();
    const p = await c.cp.getRollout(planId);
    const line = statusLine(p);
    if (line !== last) {
      history.push(line);
      c.log(`  plan ${line}`);
      last = line;
    }
    const canary = p.nodes.find((n) => n.batch === 0);
    if (!canarySeen && canary && (canary.state === "succeeded" || canary.state === "rolled_back")) {
      canarySeen = true;
      c.record("canary", `${canary.node_id} verified and activated release 2 (the plan's canary batch); the agents' calls on it are now decided by release 2's policy`);
    }
    const gate = p.stages[0]?.gates[0];
    if (!gateSeen && gate?.status === "failed") {
      gateSeen = true;
      c.record("behaviour gate", `FAILED, as it must: ${gate.detail}`);
    }
    if (p.phase === "rolled_back") {
      c.record("rolled back", `plan ${planId} rolled back by itself: ${p.reason}`, gateSeen);
      return p;
    }
    if (p.phase === "completed" || p.phase === "cancelled" || p.phase === "failed") {
      const where = p.nodes.map((n) => `${n.node_id} ${n.state}`).join(", ");
      throw new StepFailed("rolled back", `the plan ended ${p.phase}, not rolled_back (${p.reason || "no reason given"}): release 2 was not stopped by its behaviour gate; its nodes: ${where}`);
    }
    if (Date.now() > end) throw new StepFailed("rolled back", `timed out after ${Math.round(c.timeoutMs / 1000)} s waiting for plan ${planId} to roll back; last seen: ${line}; ${gate ? `gate ${gate.status}: ${gate.detail}` : "no gate"}`);
    await sleep(250, c.signal);
  }
}

function statusLine(p: Rollout): string {
  const nodes = p.nodes.map((n) => `${n.node_id} ${n.state}${n.last_phase ? `/${n.last_phase}` : ""}${n.rollback ? ` (rollback ${n.rollback})` : ""}`).join(", ");
  const stages = p.stages.map((s) => `${s.stage_id} ${s.stage_phase}${s.gates.length ? ` [${s.gates.map((g) => `${g.kind} ${g.status}`).join(", ")}]` : ""}`).join(" → ");
  return `${p.phase}: ${stages}; ${nodes}`;
}

/** After the rollback: the canary back on release 1's content, the others never on release 2, each node's own WAL agreeing. */
async function checkAfter(c: RolloutContext, o: RolloutOutcome, bad: FleetRelease, back: FleetRelease): Promise<void> {
  const canaryNode = c.nodes.find((n) => n.nodeId === o.canary);
  if (!canaryNode) throw new StepFailed("canary back", `the plan's canary ${o.canary} is not one of the tutorial's nodes`);
  // The rollback is confirmed by the canary's ack; its heartbeat (once per poll interval) follows.
  const cv = await waitFor<Awaited<ReturnType<typeof nodeWithAcks>>>("canary back", `${o.canary}'s heartbeat to name ${o.rollback_release_id}`, async () => {
    const v = await nodeWithAcks(c.cp, o.canary);
    return v.release_id === o.rollback_release_id ? { done: v } : { seen: `heartbeat names ${v.release_id ?? "none"}` };
  }, { timeoutMs: 15_000, signal: c.signal });
  const ranBad = pathOf(cv.acks, o.release_id);
  const ranBack = pathOf(cv.acks, o.rollback_release_id);
  c.record("canary back", `${o.canary} runs ${cv.release_id ?? "none"} (sequence ${cv.activation_sequence ?? "?"}), lock ${cv.lock_fingerprint ?? "?"} = release 1's; its path: release 2 ${ranBad.join(" → ")}, then ${ranBack.join(" → ")}`,
    cv.release_id === o.rollback_release_id && cv.activation_sequence === back.sequence && cv.lock_fingerprint === c.good.release.lockFingerprint && ranBad.includes("activated") && ranBack.includes("activated"));
  const wal = await readNodeWal(canaryNode.stateRoot);
  const sum = (f: (d: DecisionCount) => boolean): { allow: number; deny: number } =>
    wal.decisions.filter(f).reduce((a, d) => ({ allow: a.allow + d.allow, deny: a.deny + d.deny }), { allow: 0, deny: 0 });
  const byBadPolicy = sum((d) => d.policy === bad.policy);
  const stampedBad = sum((d) => d.release_id === o.release_id);
  const byGoodPolicy = sum((d) => d.policy === c.good.release.policy);
  // The node stamps a decision with the release it activated; its live policy follows within 250 ms, so a few
  // decisions at each switch carry one release's id but the other's policy. Judged by the policy that decided.
  c.record("canary's own telemetry", `${o.canary}'s WAL: release 2's policy (${bad.policy}) denied ${byBadPolicy.deny} of ${byBadPolicy.allow + byBadPolicy.deny} calls; release 1's denied ${byGoodPolicy.deny} of ${byGoodPolicy.allow + byGoodPolicy.deny} (the forbidden tool.shell); ${stampedBad.allow + stampedBad.deny} decisions were reported under release 2's id`,
    byBadPolicy.deny > 0 && byBadPolicy.allow === 0 && byGoodPolicy.allow > byGoodPolicy.deny);
  for (const n of c.nodes.filter((x) => x.nodeId !== o.canary)) {
    const v = await nodeWithAcks(c.cp, n.nodeId);
    const acked = v.acks.filter((a) => a.release_id === o.release_id).length;
    const walEvents = (await readNodeWal(n.stateRoot)).lifecycle.filter((e) => e.release_id === o.release_id).length;
    c.record(`${n.nodeId} untouched`, `still on ${v.release_id ?? "none"} (sequence ${v.activation_sequence ?? "?"}); release 2 in its acks: ${acked}, in its WAL: ${walEvents}`,
      v.release_id === c.good.id && v.activation_sequence === c.good.release.sequence && acked === 0 && walEvents === 0);
  }
}
