/**
 * VAL10 (FR-RECV-02): rollbacks succeed — at least 99 % of the nodes sent
 * back are confirmed back, over at least 10 plans rolled back for every
 * reason a plan rolls back: the failure budget spent (devices that fail the
 * activation), a behaviour gate (devices whose agents misbehave on the new
 * release: a higher policy-deny rate than the rest of the fleet), an
 * operator's manual rollback (a plan waiting on its manual gate), and
 * `recover rollback` (a plan holding a hung node). Plus, as the original,
 * retry 5/5: five plans with a hung node each, recovered by `retry` once the
 * hang is cleared, all completing.
 *
 * "Confirmed" is counted twice over: by the server (the node's rollback is
 * `confirmed`) and by the device (it runs the rollback release by its own
 * account); a node counts only when both agree.
 */
import type { CpClient, Rollout } from "../../cpapi/index.js";
import type { Check, Suite, SuiteContext } from "../suite.js";
import { atLeast, atMost, equals, quantile, thresholdOf } from "../suite.js";
import { LabFleet, groups, shuffled, until } from "./lab-fleet.js";
import type { LabDevice } from "./lab-fleet.js";
import { consistency, planBody, TERMINAL_PHASES } from "./lab-observe.js";
import { idsOf, openLab, SCHEDULER_ARGS } from "./lab-session.js";
import type { Lab } from "./lab-session.js";

export type RollbackKind = "budget" | "behaviour" | "manual" | "recover";
export const ROLLBACK_KINDS: readonly RollbackKind[] = ["budget", "behaviour", "manual", "recover"];
const RETRY_PLANS = 5;
/** Short enough to be quick, long enough that a healthy device on a loaded machine reports in time. */
const STUCK_TIMEOUT_S = 5;
const DEFAULT_PER_KIND = 3;
const DEFAULT_GROUP = 8;
const WAIT_MS = 180_000;

/** What each rolled-back plan's reason must say (the engine's wording: docs/rollouts.md). */
const CAUSE: Readonly<Record<RollbackKind, RegExp>> = {
  budget: /failure budget spent/,
  behaviour: /behaviour gate failed/,
  manual: /manual rollback/,
  recover: /recover: rollback/,
};

export const val10: Suite = {
  id: "val10",
  claim: "FR-RECV-02",
  title: "rollback success ≥ 99 % over ≥ 10 plans (budget, behaviour gate, manual, recover) and retry 5/5",
  serveArgs: () => SCHEDULER_ARGS,
  run,
};

/** Fleet size → (plans per rollback kind, devices per plan); the default is 3 × 4 kinds + 5 retry plans of 8 devices. */
export function sizing(devices: number | undefined): { perKind: number; group: number } {
  if (devices === undefined) return { perKind: DEFAULT_PER_KIND, group: DEFAULT_GROUP };
  const group = Math.max(4, Math.floor(devices / (DEFAULT_PER_KIND * 4 + RETRY_PLANS)));
  return { perKind: DEFAULT_PER_KIND, group };
}

interface PlanRun {
  kind: RollbackKind | "retry";
  plan: Rollout;
  devices: LabDevice[];
  faulty: LabDevice[];
}

async function run(ctx: SuiteContext): Promise<Check[]> {
  const { perKind, group } = sizing(ctx.params.devices);
  const total = (perKind * ROLLBACK_KINDS.length + RETRY_PLANS) * group;
  const lab = await openLab(ctx, { count: total, prefix: "v10" });
  try {
    return await scenario(ctx, lab, perKind, group);
  } finally {
    await lab.close();
  }
}

async function scenario(ctx: SuiteContext, lab: Lab, perKind: number, group: number): Promise<Check[]> {
  const { owner, fleet, signer } = lab;
  const kinds: (RollbackKind | "retry")[] = [...ROLLBACK_KINDS.flatMap((k) => Array<RollbackKind>(perKind).fill(k)), ...Array<"retry">(RETRY_PLANS).fill("retry")];
  const parts = groups(shuffled(fleet.devices, ctx.seed), kinds.map(() => group));
  await fleet.pause();
  const { candidate, rollback } = await signer.nextPair(owner, 1, "candidate");
  const runs: PlanRun[] = [];
  for (const [i, kind] of kinds.entries()) {
    const devices = parts[i] ?? [];
    const r = await createFor(owner, kind, devices, candidate.release_id, rollback.release_id, group);
    runs.push(r);
  }
  ctx.log(`${runs.length} plans over groups of ${group}: ${kinds.join(", ")}`);
  fleet.resume();

  const rollbackTimes: number[] = [];
  const issued = new Map<string, number>();
  const began = new Map<string, number>();
  const timed = new Set<string>();
  let nextLog = Date.now() + 10_000;
  // Drive the operator's part: manual rollbacks at the gate, recover rollback once the hung node is stuck,
  // and the retry plans (repaired under a paused fleet, see VAL09) once their hung node is stuck.
  await until("every rollback plan terminal and every retry plan recovered", WAIT_MS, async () => {
    const now = await Promise.all(runs.map((r) => owner.getRollout(r.plan.plan_id)));
    runs.forEach((r, i) => (r.plan = now[i] ?? r.plan));
    for (const r of runs) {
      if (issued.has(r.plan.plan_id)) continue;
      if (r.kind === "manual" && r.plan.phase === "gate_wait") {
        issued.set(r.plan.plan_id, Date.now());
        began.set(r.plan.plan_id, Date.now());
        r.plan = await owner.rollbackRollout(r.plan.plan_id, "VAL10: operator stops the rollout at the gate");
      } else if (r.kind === "recover" && hungStuck(r)) {
        issued.set(r.plan.plan_id, Date.now());
        began.set(r.plan.plan_id, Date.now());
        r.plan = await owner.recoverRollout(r.plan.plan_id, { strategy: "rollback", reason: "VAL10: give up on the hung node" });
      }
    }
    const retries = runs.filter((r) => r.kind === "retry" && !issued.has(r.plan.plan_id));
    if (retries.length > 0 && retries.every(hungStuck)) await retryAll(owner, fleet, retries, issued, ctx);
    // Rollback time: from the command (manual, recover) or from when the plan was first seen rolling back (automatic).
    for (const r of runs) {
      const id = r.plan.plan_id;
      if (r.kind === "retry") continue;
      if (!began.has(id) && r.plan.phase === "rolling_back") began.set(id, Date.now());
      if (r.plan.phase === "rolled_back" && !timed.has(id)) {
        timed.add(id);
        rollbackTimes.push((Date.now() - (began.get(id) ?? Date.now())) / 1000);
      }
    }
    if (Date.now() >= nextLog) {
      nextLog = Date.now() + 10_000;
      ctx.log(`plans: ${runs.map((r) => `${r.kind}:${r.plan.phase}`).join(" ")}`);
    }
    return runs.every((r) => TERMINAL_PHASES.has(r.plan.phase) || (r.kind === "retry" && issued.has(r.plan.plan_id))) ? true : undefined;
  }, 150, ctx.signal).catch((e: unknown) => {
    // Plans that never finish are judged as they stand (their checks fail with what they show), not lost to a timeout.
    ctx.log(`${e instanceof Error ? e.message : String(e)}; ${runs.map((r) => `${r.plan.plan_id} ${r.kind}:${r.plan.phase} ${JSON.stringify(r.plan.counters)}`).join("; ")}`);
  });

  return measure(ctx, lab, runs, candidate.release_id, rollback.release_id, rollbackTimes);
}

async function createFor(owner: CpClient, kind: RollbackKind | "retry", devices: LabDevice[], release: string, previous: string, group: number): Promise<PlanRun> {
  const ids = idsOf(devices);
  const half = Math.ceil(group / 2);
  let faulty: LabDevice[] = [];
  let body = planBody(release, previous, ids);
  if (kind === "budget") {
    // Two devices fail the activation, the budget allows one: the second failure rolls the plan back by itself.
    faulty = devices.slice(0, 2);
    LabFleet.setFault(faulty, "fail", [release]);
    body = planBody(release, previous, ids, { failure_budget: { max_failures: 1 } });
  } else if (kind === "behaviour") {
    // Every device of the canary stage misbehaves on the new release; the gate compares its deny rate with the rest.
    faulty = devices.slice(0, half);
    LabFleet.setFault(devices, "misbehave", [release]);
    body = planBody(release, previous, ids, {
      stages: [
        { stage_id: "canary", batch: { count: half }, gates: [{ kind: "behaviour", metric: "deny_rate", comparison: "ratio", threshold: 2, min_samples: 40, window_seconds: 120 }] },
        { stage_id: "rest", batch: { percent: 100 } },
      ],
    });
  } else if (kind === "manual") {
    body = planBody(release, previous, ids, { stages: [{ stage_id: "canary", batch: { count: half }, gates: [{ kind: "manual" }] }, { stage_id: "rest", batch: { percent: 100 } }] });
  } else {
    // recover and retry: one device hangs after activation_started. The budget takes every node: a healthy device
    // slow to report on a loaded machine may be stuck for a moment too, and must not roll the plan back by itself.
    faulty = devices.slice(0, 1);
    LabFleet.setFault(faulty, "hang", [release]);
    body = planBody(release, previous, ids, { failure_budget: { max_failures: ids.length }, stuck_timeout_seconds: STUCK_TIMEOUT_S });
  }
  return { kind, plan: await owner.createRollout(body), devices, faulty };
}

/** Every hung device's node is stuck (others may be stuck for a moment too: they are not what the operator waits for). */
function hungStuck(r: PlanRun): boolean {
  return r.faulty.every((d) => r.plan.nodes.some((n) => n.node_id === d.nodeId && n.state === "stuck"));
}

/** Retry as an operator would after fixing the devices: fleet paused, devices repaired, recover retry, released once restarted. */
async function retryAll(owner: CpClient, fleet: LabFleet, retries: PlanRun[], issued: Map<string, number>, ctx: SuiteContext): Promise<void> {
  await fleet.pause();
  try {
    for (const r of retries) {
      for (const d of r.faulty) LabFleet.repair(d);
      issued.set(r.plan.plan_id, Date.now());
      r.plan = await owner.recoverRollout(r.plan.plan_id, { strategy: "retry", reason: "VAL10: hang cleared" });
      if (r.plan.phase !== "active") ctx.log(`retry of ${r.plan.plan_id} answered phase ${r.plan.phase}`);
    }
    await until("the retried nodes started again", WAIT_MS, async () => {
      const ps = await Promise.all(retries.map((r) => owner.getRollout(r.plan.plan_id)));
      return ps.every((p) => !p.nodes.some((n) => n.state === "retried")) ? true : undefined;
    }, 100, ctx.signal);
  } finally {
    fleet.resume();
  }
}

export interface RollbackTally {
  /** Nodes the plans sent back (rollback field set). */
  sentBack: number;
  /** Of those, confirmed by the server AND running the rollback release by the device's own account. */
  confirmed: number;
  /** Plans that started rolling back, and those that reached rolled_back. */
  plansRollingBack: number;
  plansRolledBack: number;
  /** Plans whose reason is not their kind's. */
  wrongCause: string[];
}

/** The VAL10 arithmetic over the final plans and what each device runs (exported: the tests feed it doctored plans). */
export function tally(plans: readonly { kind: RollbackKind; plan: Rollout }[], runningOf: (nodeId: string) => string | null): RollbackTally {
  const t: RollbackTally = { sentBack: 0, confirmed: 0, plansRollingBack: 0, plansRolledBack: 0, wrongCause: [] };
  for (const { kind, plan } of plans) {
    const back = plan.nodes.filter((n) => n.rollback !== null);
    t.sentBack += back.length;
    t.confirmed += back.filter((n) => n.rollback === "confirmed" && runningOf(n.node_id) === plan.previous_release_id).length;
    if (back.length > 0 || plan.phase === "rolling_back" || plan.phase === "rolled_back") t.plansRollingBack += 1;
    if (plan.phase === "rolled_back") t.plansRolledBack += 1;
    if (!CAUSE[kind].test(plan.reason)) t.wrongCause.push(`${plan.plan_id} (${kind}): ${plan.reason.slice(0, 120)}`);
  }
  return t;
}

async function measure(ctx: SuiteContext, lab: Lab, runs: PlanRun[], candidate: string, rollbackRelease: string, times: number[]): Promise<Check[]> {
  const { owner, fleet } = lab;
  // The retry plans complete after their recovery: wait for them too.
  for (const r of runs.filter((x) => x.kind === "retry")) {
    r.plan = await until(`retry plan ${r.plan.plan_id} terminal`, 60_000, async () => {
      const p = await owner.getRollout(r.plan.plan_id);
      return TERMINAL_PHASES.has(p.phase) ? p : undefined;
    }, 200, ctx.signal).catch(() => owner.getRollout(r.plan.plan_id));
  }
  const byNode = new Map(fleet.devices.map((d) => [d.nodeId, d]));
  const running = (id: string): string | null => {
    const d = byNode.get(id);
    return d === undefined ? null : fleet.runningOf(d);
  };
  const rb = runs.filter((r): r is PlanRun & { kind: RollbackKind } => r.kind !== "retry");
  const t = tally(rb, running);
  const min = thresholdOf(ctx, "rollback_success_pct", 99);
  const kindsSeen = ROLLBACK_KINDS.map((k) => `${k} ${rb.filter((r) => r.kind === k && r.plan.phase === "rolled_back").length}`).join(", ");
  const retries = runs.filter((r) => r.kind === "retry");
  const retried = retries.filter((r) => r.plan.phase === "completed" && r.plan.nodes.every((n) => n.state === "succeeded" && running(n.node_id) === candidate));
  const checks: Check[] = [
    atLeast("plans_rolled_back", t.plansRolledBack, thresholdOf(ctx, "plans_rolled_back", 10), "plans", kindsSeen),
    atLeast("rollback_success_pct", t.sentBack === 0 ? 0 : (100 * t.confirmed) / t.sentBack, min, "%", `${t.confirmed}/${t.sentBack} nodes sent back are confirmed by the server and run ${rollbackRelease} by their own account`),
    atLeast("rollback_plans_pct", t.plansRollingBack === 0 ? 0 : (100 * t.plansRolledBack) / t.plansRollingBack, min, "%", `${t.plansRolledBack}/${t.plansRollingBack} plans that rolled back reached rolled_back`),
    equals("rollback_causes", t.wrongCause.length, 0, t.wrongCause.slice(0, 2).join("; ") || "each plan rolled back for its own reason (budget, behaviour gate, manual, recover)"),
    equals("retry_success", `${retried.length}/${retries.length}`, `${RETRY_PLANS}/${RETRY_PLANS}`, "plans recovered by retry after the hang was cleared, every node on the release"),
    atMost("rollback_time_p99_s", quantile(times, 0.99), thresholdOf(ctx, "rollback_time_p99_s", 30), "s", `p50 ${(quantile(times, 0.5) || 0).toFixed(1)} s over ${times.length} plans, from the command (manual, recover) or from first seeing the plan rolling back (automatic) to rolled_back`),
  ];
  await fleet.pause();
  const c = await consistency(owner, runs.map((r) => r.plan.plan_id), fleet.devices, new Map(runs.map((r) => [r.plan.plan_id, lab.base.release_id])));
  fleet.resume();
  checks.push(equals("plans_consistent", c.violations.length, 0, c.violations.slice(0, 3).join("; ") || `${runs.length} plans, ${fleet.devices.length} assignments checked`));
  checks.push(equals("device_internal_errors", fleet.internalErrors, 0, fleet.lastInternalError || "none"));
  return checks;
}
