/**
 * VAL07 (FR-PERF-01): rollout plan creation latency at fleet scale.
 *
 * N nodes (default 1,000) enroll through the API (one single-use enrollment
 * token each) and heartbeat a base release, so every plan freezes N members
 * and pins each one's assignment, the full work of a creation. Then 100
 * sequential POST /v1/rollouts, each targeting every node by label selector
 * (rollback target: the base re-signed above the candidate, a standby release),
 * timed client-side; each plan's status is read once (GET, timed) and then
 * cancelled (not timed) so the scheduler does not keep 100 live plans over
 * the same nodes. Plans over the same nodes are allowed by the server (it
 * does not refuse overlapping plans); cancelling keeps each measurement a
 * creation against a quiet fleet. Finally 5 creates at once (wall time).
 */
import { randomBytes } from "node:crypto";
import { CpClient } from "../../cpapi/index.js";
import type { CreateRolloutInput } from "../../cpapi/index.js";
import { histogramDelta, inParallel, routeHistogram, timedJson } from "../http.js";
import { releaseKit, releaseTrio } from "../releases.js";
import type { SignedRelease } from "../releases.js";
import { atMost, equals, quantile, round1, thresholdOf } from "../suite.js";
import type { Check, Suite, SuiteContext } from "../suite.js";

export const VAL07_DEFAULT_NODES = 1000;
const SEQUENTIAL = 100;
const WARMUP = 3;
const PARALLEL = 5;

interface PlanAnswer {
  plan_id: string;
  nodes: unknown[];
}

/** Enrolls `n` nodes labelled `proof=<label>` through the API and has each heartbeat `releaseId`. */
export async function enrollNodes(ctx: SuiteContext, owner: CpClient, n: number, label: string, releaseId: string | null): Promise<string[]> {
  const prefix = `${label}-${randomBytes(3).toString("hex")}`;
  const ids = Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(4, "0")}`);
  await inParallel(ids, 16, async (id) => {
    const et = await owner.createEnrollmentToken({ node_id: id, labels: { proof: label }, ttl_seconds: 3600 }, { signal: ctx.signal });
    const { credential } = await owner.enroll(et.token, { node_id: id, labels: { proof: label } }, { signal: ctx.signal });
    const node = new CpClient({ baseUrl: ctx.cp.url, token: credential });
    await node.heartbeat(id, { release_id: releaseId, activation_sequence: releaseId === null ? null : 1, lock_fingerprint: null, boot_epoch: 0, wal_generation: null, runtime_version: "0.1.0+proof" }, { signal: ctx.signal });
  });
  return ids;
}

function planRequest(release: string, previous: string, label: string): CreateRolloutInput {
  return {
    release_id: release, previous_release_id: previous, target: { selector: { proof: label } }, max_concurrency: 100,
    stages: [{ stage_id: "all", batch: { percent: 100 } }], failure_budget: { max_failure_fraction: 0.05 }, stuck_timeout_seconds: 600, late_joiners: "ignore",
  };
}

async function run(ctx: SuiteContext): Promise<Check[]> {
  const n = ctx.params.devices ?? VAL07_DEFAULT_NODES;
  const owner = new CpClient({ baseUrl: ctx.cp.url, token: ctx.cp.ownerToken });
  const trio = await releaseTrio(await releaseKit(ctx.workDir));
  const publish = async (r: SignedRelease, standby = false): Promise<string> =>
    (await owner.publishRelease({ statement: r.statement, image: r.image, channel: r.channel, standby }, { signal: ctx.signal })).release_id;
  const base = await publish(trio.base);
  const candidate = await publish(trio.candidate);
  const rollback = await publish(trio.rollback, true);
  const label = `val07-${ctx.seed}`;
  const t0 = performance.now();
  await enrollNodes(ctx, owner, n, label, base);
  ctx.log(`val07: ${n} nodes enrolled and on ${base} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const body = planRequest(candidate, rollback, label);
  const create = async (): Promise<{ ms: number; plan: PlanAnswer | undefined; status: number }> => {
    const r = await timedJson<PlanAnswer>(ctx.cp.url, ctx.cp.ownerToken, "POST", "/v1/rollouts", body, ctx.signal);
    return { ms: r.ms, status: r.status, plan: r.status === 201 ? r.json : undefined };
  };
  const createMs: number[] = [];
  const getMs: number[] = [];
  const errors: string[] = [];
  const wrongSize: string[] = [];
  let serverBefore = await routeHistogram(ctx.cp.url, "createRollout", ctx.signal);
  for (let i = 0; i < WARMUP + SEQUENTIAL; i++) {
    if (i === WARMUP) serverBefore = await routeHistogram(ctx.cp.url, "createRollout", ctx.signal);
    const c = await create();
    if (!c.plan) {
      errors.push(`create ${i}: HTTP ${c.status}`);
      continue;
    }
    if (c.plan.nodes.length !== n) wrongSize.push(`${c.plan.plan_id}: ${c.plan.nodes.length}`);
    const g = await timedJson<PlanAnswer>(ctx.cp.url, ctx.cp.ownerToken, "GET", `/v1/rollouts/${c.plan.plan_id}`, undefined, ctx.signal);
    if (g.status !== 200) errors.push(`get ${c.plan.plan_id}: HTTP ${g.status}`);
    if (i >= WARMUP) {
      createMs.push(c.ms);
      getMs.push(g.ms);
    }
    await owner.cancelRollout(c.plan.plan_id, "val07: measured", { signal: ctx.signal });
    if ((i + 1) % 25 === 0) ctx.log(`val07: ${i + 1 - WARMUP} creates, p99 so far ${round1(quantile(createMs, 0.99))} ms`);
  }

  const server = histogramDelta(serverBefore, await routeHistogram(ctx.cp.url, "createRollout", ctx.signal), 50);
  const p0 = performance.now();
  const parallel = await Promise.all(Array.from({ length: PARALLEL }, () => create()));
  const parallelMs = performance.now() - p0;
  for (const c of parallel) {
    if (c.plan) await owner.cancelRollout(c.plan.plan_id, "val07: measured", { signal: ctx.signal });
    else errors.push(`parallel create: HTTP ${c.status}`);
  }

  const stats = (xs: number[]): string => `n=${xs.length} p50 ${round1(quantile(xs, 0.5))} p95 ${round1(quantile(xs, 0.95))} p99 ${round1(quantile(xs, 0.99))} max ${round1(Math.max(...xs))} ms`;
  const members = `${SEQUENTIAL} sequential creates over ${n} nodes (label selector), after ${WARMUP} warm-up creates; ${stats(createMs)}; server-side (its /metrics histogram): mean ${round1(server.meanMs)} ms, ${server.within} of ${server.count} within 50 ms`;
  return [
    equals("plans created without error", errors.length === 0, true, errors.slice(0, 3).join("; ") || `${WARMUP + SEQUENTIAL + PARALLEL} creates`),
    equals("every plan froze every node", wrongSize.length === 0 ? n : Number.NaN, n, wrongSize.slice(0, 3).join("; ") || `${n} members each`),
    atMost("plan create p99 (ms)", quantile(createMs, 0.99), thresholdOf(ctx, "plan_create_p99_ms", 50), "ms", `${members}; the issue's bar (seed: 500 ms)`),
    atMost("plan create p95 (ms)", quantile(createMs, 0.95), thresholdOf(ctx, "plan_create_p95_ms", 300), "ms", "seed bar"),
    atMost("plan create p50 (ms)", quantile(createMs, 0.5), thresholdOf(ctx, "plan_create_p50_ms", 100), "ms", "seed bar"),
    atMost("plan status GET p99 (ms)", quantile(getMs, 0.99), thresholdOf(ctx, "plan_get_p99_ms", 500), "ms", `GET /v1/rollouts/{id} with ${n} nodes; ${stats(getMs)}; seed bar`),
    atMost(`${PARALLEL} parallel creates (ms, wall)`, parallelMs, thresholdOf(ctx, "parallel_creates_ms", 2000), "ms", `each ${parallel.map((c) => round1(c.ms)).join(", ")} ms; seed bar`),
  ];
}

export const val07: Suite = { id: "val07", claim: "FR-PERF-01", title: "rollout plan creation latency at 1,000 nodes", run };
