/**
 * VAL08 (FR-THRU-01): 1,000 concurrent device rollouts with zero errors.
 *
 * The fleet simulator's engine (src/fleetsim, what `autonomy lab fleet` runs)
 * drives N virtual devices (default 1,000) against the real server: each
 * enrolls with its own token, converges on a signed base release (the
 * channel's latest), then one plan moves all N to a signed candidate with
 * max concurrency N, in one batch, with a failure budget of zero and the
 * base re-signed above the candidate as its standby rollback target. Every device
 * verifies the candidate's statement itself before it activates.
 *
 * The candidate must reach the devices only through the plan: it is published
 * as a standby release (never a channel's latest; docs/rollouts.md), so no
 * device picks it up on its own in the moment before the plan exists, and the
 * plan's start assignments are the only way to it. Then the plan is created
 * and timed.
 */
import { CpClient } from "../../cpapi/index.js";
import type { Rollout } from "../../cpapi/index.js";
import { parseFaults, runFleet } from "../../fleetsim/index.js";
import type { FleetSummary } from "../../fleetsim/index.js";
import { ProofError } from "../errors.js";
import { nodesWithLabel, until } from "../fleet-view.js";
import { releaseKit, releaseTrio } from "../releases.js";
import type { SignedRelease } from "../releases.js";
import { atMost, equals, round1, thresholdOf } from "../suite.js";
import type { Check, Suite, SuiteContext } from "../suite.js";

export const VAL08_DEFAULT_DEVICES = 1000;
/** Longest the fleet may take to settle on the base release before the plan (set-up, not measured). */
const BASE_TIMEOUT_MS = 600_000;
const TERMINAL = new Set(["completed", "cancelled", "rolled_back", "failed"]);

async function run(ctx: SuiteContext): Promise<Check[]> {
  const n = ctx.params.devices ?? VAL08_DEFAULT_DEVICES;
  const owner = new CpClient({ baseUrl: ctx.cp.url, token: ctx.cp.ownerToken });
  const kit = await releaseKit(ctx.workDir);
  const trio = await releaseTrio(kit); // all three signed now; the candidate and its rollback target are published (standby) once the fleet runs the base
  const publish = async (r: SignedRelease, standby = false): Promise<string> =>
    (await owner.publishRelease({ statement: r.statement, image: r.image, channel: r.channel, standby }, { signal: ctx.signal })).release_id;
  const base = await publish(trio.base);
  const label = { proof: `val08-${ctx.seed}` };
  const selector = `proof=${label.proof}`;

  const stopFleet = new AbortController();
  const onAbort = (): void => stopFleet.abort();
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  const fleet: Promise<FleetSummary> = runFleet({
    devices: n, server: ctx.cp.url, token: ctx.cp.ownerToken, channel: "stable", labels: label, faults: parseFaults(""), seed: ctx.seed, trust: kit.trust,
    nodePrefix: `val08-${ctx.seed.toString(16)}`, durationMs: 3_600_000, untilConverged: false, pollIntervalMs: 2000, maxInflight: 64,
    maxTransportErrorRate: 0, allowRemote: false, signal: stopFleet.signal,
  });
  let summary: FleetSummary | undefined;
  try {
    const t0 = performance.now();
    const onBase = await until(BASE_TIMEOUT_MS, async () => {
      const nodes = await nodesWithLabel(owner, selector, ctx.signal);
      return nodes.length === n && nodes.every((x) => x.release_id === base) ? nodes.length : undefined;
    }, ctx.signal);
    if (onBase === undefined) throw new ProofError("PROOF_TIMEOUT", `the ${n} devices did not all report ${base} within ${BASE_TIMEOUT_MS / 1000} s`, { hint: "the machine may be overloaded; try a smaller --devices to see whether the control plane keeps up" });
    ctx.log(`val08: ${n} devices on the base release ${base} after ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const candidateId = await publish(trio.candidate, true);
    const rollbackId = await publish(trio.rollback, true);
    const c0 = performance.now();
    const plan = await owner.createRollout({
      release_id: candidateId, previous_release_id: rollbackId, target: { selector: label }, max_concurrency: n,
      stages: [{ stage_id: "all", batch: { percent: 100 } }], failure_budget: { max_failures: 0 }, stuck_timeout_seconds: 600, late_joiners: "ignore",
    }, { signal: ctx.signal });
    // The seed: N=100 in ≤ 30 s; ten times the devices, ten times the time.
    const convergeLimitS = thresholdOf(ctx, "converge_s", 300);
    const final = await until(convergeLimitS * 1000 + 60_000, async () => {
      const p = await owner.getRollout(plan.plan_id, { signal: ctx.signal });
      return TERMINAL.has(p.phase) ? p : undefined;
    }, ctx.signal, 250);
    const planMs = performance.now() - c0;
    ctx.log(`val08: plan ${plan.plan_id} ${final?.phase ?? "not finished"} after ${(planMs / 1000).toFixed(1)} s`);
    // Every device heartbeats the candidate once it activated it (the control plane's own record of what runs).
    const allOn = await until(60_000, async () => {
      const nodes = await nodesWithLabel(owner, selector, ctx.signal);
      return nodes.filter((x) => x.release_id === candidateId).length === n ? nodes : undefined;
    }, ctx.signal);
    const convergedMs = performance.now() - c0;
    stopFleet.abort();
    summary = await fleet;
    const nodes = allOn ?? (await nodesWithLabel(owner, selector, ctx.signal));
    const checks = checksOf({ n, candidateId, final, planMs, convergedMs: allOn ? convergedMs : Number.POSITIVE_INFINITY, convergeLimitS, summary, nodes });
    return [...checks, ...(await createBurst(ctx, owner, candidateId, rollbackId, nodes.map((x) => x.node_id)))];
  } finally {
    ctx.signal.removeEventListener("abort", onAbort);
    stopFleet.abort();
    if (!summary) await fleet.catch(() => undefined);
  }
}

/**
 * The seed's VAL08 check: 500 plan creates (100 rounds of 5 at once) with no error, every one
 * then listed by GET /v1/rollouts. Each plan names 10 of the fleet's nodes (the fleet has
 * stopped); each round's plans are cancelled after it so the scheduler has no live plans to tick.
 */
async function createBurst(ctx: SuiteContext, owner: CpClient, release: string, previous: string, nodeIds: readonly string[]): Promise<Check[]> {
  const rounds = 100;
  const width = 5;
  const created: string[] = [];
  const errors: string[] = [];
  const t0 = performance.now();
  for (let r = 0; r < rounds; r++) {
    const batch = await Promise.all(Array.from({ length: width }, async (_, k) => {
      const at = ((r * width + k) * 10) % Math.max(1, nodeIds.length - 10);
      try {
        return (await owner.createRollout({
          release_id: release, previous_release_id: previous, target: { nodes: nodeIds.slice(at, at + 10) }, max_concurrency: 10,
          stages: [{ stage_id: "all", batch: { percent: 100 } }], failure_budget: { max_failures: 0 }, stuck_timeout_seconds: 600, late_joiners: "ignore",
        }, { signal: ctx.signal })).plan_id;
      } catch (e) {
        errors.push(e instanceof Error ? e.message : String(e));
        return undefined;
      }
    }));
    const ids = batch.filter((x): x is string => x !== undefined);
    created.push(...ids);
    for (const id of ids) await owner.cancelRollout(id, "val08: create burst", { signal: ctx.signal });
  }
  const createMs = performance.now() - t0;
  const listed = new Set<string>();
  let cursor: string | undefined;
  do {
    const page = await owner.listRollouts({ limit: 100, ...(cursor !== undefined ? { cursor } : {}) }, { signal: ctx.signal });
    for (const p of page.rollouts) listed.add(p.plan_id);
    cursor = page.next_cursor ?? undefined;
  } while (cursor !== undefined);
  const missing = created.filter((id) => !listed.has(id));
  return [
    equals(`${rounds * width} plan creates (${rounds} rounds of ${width} at once) without error`, errors.length, 0, `${created.length} created in ${round1(createMs / 1000)} s (with a cancel after each round)${errors.length ? `; ${errors.slice(0, 2).join("; ")}` : ""}`),
    equals("every created plan listed by GET /v1/rollouts", missing.length === 0 && created.length === rounds * width, true, `${created.length - missing.length} of ${rounds * width} listed`),
  ];
}

interface Outcome {
  n: number;
  candidateId: string;
  final: Rollout | undefined;
  planMs: number;
  convergedMs: number;
  convergeLimitS: number;
  summary: FleetSummary;
  nodes: Array<{ node_id: string; release_id: string | null; last_ack: { release_id: string; phase: string } | null }>;
}

function checksOf(o: Outcome): Check[] {
  const { summary: s } = o;
  const httpErrors = Object.values(s.errors).reduce((a, b) => a + b, 0);
  const errorList = Object.entries(s.errors).map(([k, v]) => `${k} ${v}`).join(", ");
  const verifyFailed = (s.phases.verify_failed ?? 0) + (o.final?.counters.failed ?? 0);
  const ackedActivated = o.nodes.filter((x) => x.last_ack?.release_id === o.candidateId && x.last_ack.phase === "activated").length;
  const phases = Object.entries(s.phases).map(([k, v]) => `${k} ${v}`).join(", ");
  return [
    equals("plan completed", o.final?.phase ?? "not finished", "completed", o.final ? `${o.final.reason} after ${round1(o.planMs / 1000)} s` : "no terminal phase in time"),
    equals("nodes succeeded", o.final?.counters.succeeded ?? 0, o.n, o.final ? `counters ${JSON.stringify(o.final.counters)}` : ""),
    equals("failed HTTP requests (4xx/5xx/transport)", httpErrors + s.requests.transport_errors, 0, `${s.requests.total} requests by the devices (p50 ${s.requests.p50_ms ?? "-"} ms, p99 ${s.requests.p99_ms ?? "-"} ms)${errorList ? `; ${errorList}` : ""}; transport errors ${s.requests.transport_errors}`),
    equals("verify failures", verifyFailed, 0, `device last phases: ${phases}`),
    equals("nodes whose latest ack is activated for the release", ackedActivated, o.n),
    equals("devices running the release (their own state)", s.releases[o.candidateId] ?? 0, o.n),
    equals("events inserted = sent", s.events.inserted === s.events.sent && s.events.pending === 0 && s.events.dropped === 0, true, `sent ${s.events.sent}, inserted ${s.events.inserted}, pending ${s.events.pending}, dropped ${s.events.dropped}`),
    equals("device rounds without internal error", s.internal_errors.count, 0, s.internal_errors.last ?? ""),
    atMost("time to converge (s)", o.convergedMs / 1000, o.convergeLimitS, "s", `plan creation until all ${o.n} nodes heartbeat the release (plan completed after ${round1(o.planMs / 1000)} s); max concurrency ${o.n}, poll interval 2 s`),
  ];
}

export const val08: Suite = { id: "val08", claim: "FR-THRU-01", title: "1,000 concurrent device rollouts with zero errors", run };
