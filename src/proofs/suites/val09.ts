/**
 * VAL09 (FR-RECV-01): stuck rollouts are detected and recovered, by retry
 * and by rollback. Virtual devices that hang after `activation_started` make
 * their nodes stuck; `GET /v1/rollouts/stuck?threshold_seconds=N` must list
 * the plans they hold with the original's diagnosis fields, and must NOT list
 * a paused plan (an operator's choice) or a terminal one. `recover retry`
 * (after the hang is cleared) must make the plan active and complete it;
 * `recover rollback` must roll it back with every started node confirmed on
 * the rollback release by the node itself.
 *
 * Four plans over disjoint groups: A (retry), B (rollback), C (paused while a
 * node is stuck), D (no fault: completes, terminal).
 */
import type { Rollout, StuckPlan } from "../../cpapi/index.js";
import type { Check, Suite, SuiteContext } from "../suite.js";
import { atLeast, atMost, equals, thresholdOf } from "../suite.js";
import { LabFleet, groups, shuffled, until } from "./lab-fleet.js";
import type { LabDevice } from "./lab-fleet.js";
import { consistency, planBody, TERMINAL_PHASES } from "./lab-observe.js";
import { idsOf, openLab, SCHEDULER_ARGS } from "./lab-session.js";

/** Seconds without a report before a started node is stuck (the plans' stuck_timeout_seconds). */
const STUCK_TIMEOUT_S = 5;
/** The query's threshold: the smallest the API takes. */
const QUERY_THRESHOLD_S = 1;
const DEFAULT_DEVICES = 40;
const WAIT_MS = 120_000;

export interface Detection {
  listedAt: number;
  entry: StuckPlan;
}

export const val09: Suite = {
  id: "val09",
  claim: "FR-RECV-01",
  title: "stuck rollouts detected and recovered by retry and by rollback",
  serveArgs: () => SCHEDULER_ARGS,
  run,
};

async function run(ctx: SuiteContext): Promise<Check[]> {
  const per = Math.max(3, Math.floor((ctx.params.devices ?? DEFAULT_DEVICES) / 4));
  const lab = await openLab(ctx, { count: per * 4, prefix: "v09" });
  try {
    return await scenario(ctx, lab, per);
  } finally {
    await lab.close();
  }
}

async function scenario(ctx: SuiteContext, lab: Awaited<ReturnType<typeof openLab>>, per: number): Promise<Check[]> {
  const { owner, fleet, signer } = lab;
  const [gA = [], gB = [], gC = [], gD = []] = groups(shuffled(fleet.devices, ctx.seed), [per, per, per, per]);
  const hangs = Math.max(1, Math.round(per * 0.3));
  const hungA = gA.slice(0, hangs);
  const hungB = gB.slice(0, hangs);
  const hungC = gC.slice(0, 1);

  await fleet.pause();
  const { candidate, rollback } = await signer.nextPair(owner, 1, "candidate");
  LabFleet.setFault([...hungA, ...hungB, ...hungC], "hang", [candidate.release_id]);
  // A budget of every node: the hang must not roll A, B or C back by itself, nor a healthy device that a loaded
  // machine makes stuck for a moment.
  const body = (g: LabDevice[], budget: number) => planBody(candidate.release_id, rollback.release_id, idsOf(g), { stuck_timeout_seconds: STUCK_TIMEOUT_S, failure_budget: { max_failures: budget } });
  const A = await owner.createRollout(body(gA, per));
  const B = await owner.createRollout(body(gB, per));
  const C = await owner.createRollout(body(gC, per));
  const D = await owner.createRollout(body(gD, per));
  const planIds = [A.plan_id, B.plan_id, C.plan_id, D.plan_id];
  const pins = new Map(planIds.map((id) => [id, lab.base.release_id]));
  ctx.log(`plans A ${A.plan_id} (retry), B ${B.plan_id} (rollback), C ${C.plan_id} (paused), D ${D.plan_id} (clean); ${hangs} hanging device(s) in A and B, 1 in C`);
  fleet.resume();

  // Detection: poll the stuck list until A and B list every hung node; note when each plan first appears with them all.
  const detected = new Map<string, Detection>();
  const want = new Map([[A.plan_id, idsOf(hungA)], [B.plan_id, idsOf(hungB)], [C.plan_id, idsOf(hungC)]]);
  let cListedBeforePause = false;
  await until("A, B and C listed as stuck with every hung node", WAIT_MS, async () => {
    const list = await owner.stuckRollouts(QUERY_THRESHOLD_S);
    for (const e of list) {
      const w = want.get(e.plan_id);
      if (w === undefined || detected.has(e.plan_id)) continue;
      const stuck = new Set(e.stuck_nodes.filter((n) => n.state === "stuck").map((n) => n.node_id));
      if (w.every((id) => stuck.has(id))) detected.set(e.plan_id, { listedAt: Date.now(), entry: e });
    }
    return detected.size === 3 ? true : undefined;
  }, 100, ctx.signal);
  cListedBeforePause = detected.has(C.plan_id);
  await owner.pauseRollout(C.plan_id, "VAL09: paused while a node is stuck");
  await until("D completed", WAIT_MS, async () => ((await owner.getRollout(D.plan_id)).phase === "completed" ? true : undefined), 200, ctx.signal);
  const listAfterPause = await owner.stuckRollouts(QUERY_THRESHOLD_S);
  const listed = new Set(listAfterPause.map((e) => e.plan_id));

  const checks: Check[] = [];
  const dA = detected.get(A.plan_id);
  const dB = detected.get(B.plan_id);
  checks.push(equals("stuck_plans_listed", [A, B].filter((p) => listed.has(p.plan_id)).length, 2, `plans with hung nodes in the list at threshold ${QUERY_THRESHOLD_S} s`));
  const listedStuck = new Set([...(dA?.entry.stuck_nodes ?? []), ...(dB?.entry.stuck_nodes ?? [])].filter((n) => n.state === "stuck").map((n) => n.node_id));
  const hungListed = [...hungA, ...hungB].filter((d) => listedStuck.has(d.nodeId)).length;
  checks.push(equals("stuck_nodes_diagnosed", hungListed, hungA.length + hungB.length, `hung devices listed as stuck nodes of A and B (${listedStuck.size} listed in all)`));
  checks.push(equals("diagnosis_fields", fieldProblems([dA?.entry, dB?.entry], [hungA, hungB]).join("; ") || "complete", "complete", "plan_id, phase, current_stage_id, stuck_since, stuck_reason naming each stuck node (the original's fields)"));
  const latency = detectionLatency([dA, dB]);
  checks.push(atMost("detection_latency_s", latency, thresholdOf(ctx, "detection_latency_s", STUCK_TIMEOUT_S + 5), "s", `from a hung node's last report (stuck_since) to the plan listed; stuck_timeout_seconds ${STUCK_TIMEOUT_S}`));
  checks.push(equals("paused_plan_not_listed", !listed.has(C.plan_id) && cListedBeforePause, true, `C was listed while active (${String(cListedBeforePause)}) and is not once paused (${String(!listed.has(C.plan_id))})`));
  checks.push(equals("terminal_plan_not_listed", !listed.has(D.plan_id), true, "D completed"));

  // Retry: pause the fleet, repair A's hung devices, recover retry, and let them go only once the plan restarted them
  // (an ack for a node the plan has not restarted yet would be refused).
  await fleet.pause();
  for (const d of hungA) LabFleet.repair(d);
  const tRetry = Date.now();
  const afterRetry = await owner.recoverRollout(A.plan_id, { strategy: "retry", reason: "VAL09: hang cleared" });
  await until("A's retried nodes started again", WAIT_MS, async () => {
    const p = await owner.getRollout(A.plan_id);
    return p.nodes.filter((n) => hungA.some((d) => d.nodeId === n.node_id)).every((n) => n.state === "in_progress" && n.attempts === 2) ? true : undefined;
  }, 100, ctx.signal);
  fleet.resume();
  // Rollback: B as it is, hung nodes and all.
  const tRollback = Date.now();
  const afterRollback = await owner.recoverRollout(B.plan_id, { strategy: "rollback", reason: "VAL09: give up on the hung nodes" });
  const finalA = await settle(owner, A.plan_id, ctx);
  const finalB = await settle(owner, B.plan_id, ctx);
  const retrySeconds = (finalA.at - tRetry) / 1000;
  const rollbackSeconds = (finalB.at - tRollback) / 1000;

  checks.push(equals("retry_plan_active", afterRetry.phase, "active", "the phase recover retry answered"));
  checks.push(equals("retry_completes", `${finalA.plan.phase}, ${finalA.plan.nodes.filter((n) => n.state === "succeeded").length}/${per} succeeded`, `completed, ${per}/${per} succeeded`, `in ${retrySeconds.toFixed(1)} s; the hung nodes on attempt 2`));
  checks.push(equals("retry_devices_on_release", hungA.filter((d) => fleet.runningOf(d) === candidate.release_id).length, hungA.length, "retried devices that activated the candidate by their own account"));
  checks.push(equals("rollback_plan_rolled_back", `${afterRollback.phase} → ${finalB.plan.phase}`, `rolling_back → rolled_back`, `in ${rollbackSeconds.toFixed(1)} s`));
  const started = finalB.plan.nodes.filter((n) => n.attempts > 0);
  const confirmed = started.filter((n) => n.rollback === "confirmed" && fleet.runningOf(device(gB, n.node_id)) === rollback.release_id);
  checks.push(atLeast("rollback_nodes_confirmed_pct", started.length === 0 ? 0 : (100 * confirmed.length) / started.length, 100, "%", `${confirmed.length}/${started.length} started nodes confirmed back and running ${rollback.release_id} by their own account`));

  await owner.cancelRollout(C.plan_id, "VAL09: done");
  const end = await owner.stuckRollouts(QUERY_THRESHOLD_S);
  checks.push(equals("recovered_plans_not_listed", end.filter((e) => planIdsIn([A, B, C, D], e)).length, 0, "after recovery (A completed, B rolled back, C cancelled, D completed)"));
  await fleet.pause();
  const c = await consistency(owner, planIds, fleet.devices, pins);
  fleet.resume();
  checks.push(equals("plans_consistent", c.violations.length, 0, c.violations.slice(0, 3).join("; ") || `4 plans, ${fleet.devices.length} assignments checked`));
  checks.push(equals("device_internal_errors", fleet.internalErrors, 0, fleet.lastInternalError || "none"));
  return checks;
}

function device(ds: readonly LabDevice[], id: string): LabDevice {
  const d = ds.find((x) => x.nodeId === id);
  if (d === undefined) throw new Error(`no device ${id}`);
  return d;
}

function planIdsIn(plans: readonly Rollout[], e: StuckPlan): boolean {
  return plans.some((p) => p.plan_id === e.plan_id);
}

/** Waits for a terminal phase; returns the plan and when it was seen. */
async function settle(owner: Awaited<ReturnType<typeof openLab>>["owner"], planId: string, ctx: SuiteContext): Promise<{ plan: Rollout; at: number }> {
  return until(`plan ${planId} terminal`, WAIT_MS, async () => {
    const p = await owner.getRollout(planId);
    return TERMINAL_PHASES.has(p.phase) ? { plan: p, at: Date.now() } : undefined;
  }, 100, ctx.signal);
}

/** The original's diagnosis fields present and saying what happened (exported for the tests: a doctored entry must fail). */
export function fieldProblems(entries: readonly (StuckPlan | undefined)[], hung: readonly (readonly LabDevice[])[]): string[] {
  const out: string[] = [];
  entries.forEach((e, i) => {
    if (e === undefined) return void out.push(`plan ${i}: not listed`);
    if (!/^plan-[0-9a-f]{16}$/.test(e.plan_id)) out.push(`${e.plan_id}: plan_id`);
    if (e.phase !== "active") out.push(`${e.plan_id}: phase ${e.phase}, expected active`);
    if (e.current_stage_id !== "all") out.push(`${e.plan_id}: current_stage_id ${String(e.current_stage_id)}`);
    const since = Date.parse(e.stuck_since);
    const earliest = Math.min(...e.stuck_nodes.map((n) => Date.parse(n.since)));
    if (!Number.isFinite(since) || since !== earliest) out.push(`${e.plan_id}: stuck_since ${e.stuck_since} is not the earliest stuck node's`);
    for (const d of hung[i] ?? []) if (!e.stuck_reason.includes(d.nodeId)) out.push(`${e.plan_id}: stuck_reason does not name ${d.nodeId}`);
  });
  return out;
}

/** The slowest detection: listed time minus the stuck node's last report (`since`), in seconds. */
export function detectionLatency(ds: readonly (Detection | undefined)[]): number {
  let worst = 0;
  for (const d of ds) {
    if (d === undefined) return Number.POSITIVE_INFINITY;
    for (const n of d.entry.stuck_nodes) if (n.state === "stuck") worst = Math.max(worst, (d.listedAt - Date.parse(n.since)) / 1000);
  }
  return worst;
}
