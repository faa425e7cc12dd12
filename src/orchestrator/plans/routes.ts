import { randomBytes } from "node:crypto";
import type { FastifyInstance, FastifyPluginAsync } from "fastify";
import type { Kysely } from "kysely";
import { z } from "zod";
import { ApproveRequest, ApproveResult, CreateRolloutRequest, Cursor, Limit, PlanCommandRequest, PlanId, RecoverRequest, Rollout, RolloutPage, StageGates, StageId, StuckPlans, StuckQuery } from "../../cpapi/index.js";
import type { AckRequest } from "../../cpapi/index.js";
import type { AreaDeps } from "../area.js";
import type { Database } from "../db/schema.js";
import { withStoreErrors } from "../db/store-errors.js";
import { RequestInvalid } from "../errors.js";
import type { AckHook } from "../nodes/store.js";
import { applyReport, approveStage, cancel, createPlan, diagnoseStuck, isTerminal, pause, recover, resume, rollback, stageGates, toRollout, toRolloutSummary, toStuckPlan } from "../rollouts/index.js";
import { RolloutError } from "../rollouts/index.js";
import type { PlanState, Transition } from "../rollouts/index.js";
import { jsonSchemaOf } from "../validation.js";
import { AssignmentCache } from "./assignments.js";
import { fleetWithReleases, observe } from "./observe.js";
import { baseReleaseOf, checkRollbackTarget } from "./rollback-target.js";
import { RolloutScheduler } from "./scheduler.js";
import { PlanStateCache } from "./state-cache.js";
import { insertPlan, listPlans, livePlanIds, notFound, pinOf, readPlan, stepInTx, stepPlan } from "./store.js";

const PlanParams = z.strictObject({ plan_id: PlanId });
const StageParams = z.strictObject({ plan_id: PlanId, stage_id: StageId });
const ListQuery = z.strictObject({ cursor: Cursor.optional(), limit: Limit });

export interface RolloutsAreaOptions {
  /** How long another server's assignment writes may stay unseen by this one (ms); the releases cache's rule. */
  assignmentCacheMs: number;
  /** Scheduler interval (ms). */
  schedulerMs?: number;
}

/** The rollouts area as `buildApp` wires it: the routes, the ack hook, the poll route's assignment lookup, the scheduler. */
export interface RolloutsArea {
  plugin: FastifyPluginAsync;
  onAck: AckHook;
  assignedReleaseOf: (nodeId: string) => Promise<string | null>;
  /** The releases area's withdraw hook: pauses the live plans that name the release. */
  onReleaseWithdrawn: (releaseId: string) => Promise<void>;
  scheduler: RolloutScheduler;
}

function encodeCursor(pos: { c: string; p: string }): string {
  return Buffer.from(JSON.stringify(pos), "utf8").toString("base64url");
}

function decodeCursor(cursor: string): { c: string; p: string } {
  try {
    const v = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as { c?: unknown; p?: unknown };
    if (typeof v.c === "string" && typeof v.p === "string") return { c: v.c, p: v.p };
  } catch {
    // the same refusal below
  }
  throw new RequestInvalid("invalid query: cursor: not a cursor this server returned (pass next_cursor back unchanged)");
}

/**
 * Pins at creation: every member keeps the release it runs now (its
 * heartbeat's release_id, else the channel's release below the plan's), so a
 * node whose batch has not started does not jump to the channel's newer latest.
 */
async function pinsOf(db: Kysely<Database>, state: PlanState, running: ReadonlyMap<string, string | null>): Promise<Map<string, string>> {
  const base = await baseReleaseOf(db, state.release_id);
  const pins = new Map<string, string>();
  for (const n of state.nodes) {
    const pin = pinOf(running.get(n.node_id) ?? null, base);
    if (pin !== null) pins.set(n.node_id, pin);
  }
  return pins;
}

/** A rollback (manual, or recover rollback) to a withdrawn target: 422 ROLLOUT_ROLLBACK_UNREACHABLE, nothing changed. */
async function assertRollbackTargetLive(tx: Kysely<Database>, s: PlanState): Promise<void> {
  const target = s.previous_release_id;
  if (target === null) return; // the engine's own refusal (no previous release)
  const row = await tx.selectFrom("releases").select("withdrawn_at").where("release_id", "=", target).executeTakeFirst();
  if (row === undefined || row.withdrawn_at === null) return;
  throw new RolloutError(
    "ROLLOUT_ROLLBACK_UNREACHABLE",
    `previous_release_id: the plan's rollback target ${target} was withdrawn at ${row.withdrawn_at}, so no node would be offered it; cancel this plan and roll back with a new plan whose release is a fresh re-signed rollback (autonomy release rollback --to … --sequence N)`,
    { field: "previous_release_id", release_id: target, withdrawn_at: row.withdrawn_at },
  );
}

async function knownReleases(db: Kysely<Database>, ids: readonly string[]): Promise<Set<string>> {
  const rows = await db.selectFrom("releases").select("release_id").where("release_id", "in", [...ids]).execute();
  return new Set(rows.map((r) => r.release_id));
}

/**
 * The ack hook (inside the ack's transaction): a node with an assignment
 * reports to the plan that assigned it, through the engine's applyReport.
 * Rules: no assignment or a terminal plan → the ack is only recorded; a
 * member the plan has not started (pending, retried, skipped) reporting the
 * release it was pinned to → only recorded; anything else goes to the engine,
 * and its refusals (a release the node was not assigned, a step its state
 * forbids) refuse the ack: 409, nothing of it kept.
 */
function ackHook(deps: AreaDeps, invalidate: () => void, cache: PlanStateCache): AckHook {
  return async (tx, nodeId, ack: AckRequest) => {
    const a = await tx.selectFrom("node_assignments").select(["plan_id", "release_id"]).where("node_id", "=", nodeId).executeTakeFirst();
    if (!a) return undefined;
    const now = deps.clock.now();
    const out = await stepInTx(tx, deps.store.dialect, a.plan_id, now, (state) => {
      const same = { state, effects: [], result: undefined };
      if (isTerminal(state.phase)) return same;
      const n = state.nodes.find((x) => x.node_id === nodeId);
      if (n === undefined) return same;
      const notStarted = n.state === "pending" || n.state === "retried" || n.state === "skipped";
      if (notStarted && n.rollback === null && ack.release_id === a.release_id) return same;
      const r = applyReport(state, { node_id: nodeId, release_id: ack.release_id, phase: ack.phase, detail: ack.detail, at: Date.parse(ack.at) }, now);
      return { state: r.state, effects: r.effects, result: undefined };
    }, "wait", cache);
    if (out === undefined) return undefined;
    if (out.assignmentsChanged) invalidate();
    // After the ack's commit: the new version enters the plan cache, and the assignment cache is emptied again.
    return () => {
      out.committed();
      if (out.assignmentsChanged) invalidate();
    };
  };
}

export function rolloutsArea(deps: AreaDeps, opts: RolloutsAreaOptions): RolloutsArea {
  const { store, clock } = deps;
  const cache = new AssignmentCache(store, clock, opts.assignmentCacheMs);
  const invalidate = (): void => cache.invalidateAll();
  const plans = new PlanStateCache();
  const scheduler = new RolloutScheduler(store, clock, deps.log, invalidate, opts.schedulerMs, plans);
  const now = (): number => clock.now();

  /** Runs a command in one transaction; 404 for an unknown plan. */
  const command = async <R>(planId: string, fn: (s: PlanState, tx: Kysely<Database>) => Promise<Transition & { result: R }> | (Transition & { result: R })) => {
    const out = await stepPlan(store, planId, now, fn, { onAssignments: invalidate, cache: plans });
    if (!out) throw notFound(planId);
    return out;
  };
  const simple = (app: FastifyInstance, url: string, route: "pauseRollout" | "resumeRollout" | "cancelRollout" | "rollbackRollout", step: (s: PlanState, at: number, reason: string, tx: Kysely<Database>) => Transition | Promise<Transition>): void => {
    app.post<{ Params: z.infer<typeof PlanParams>; Body: PlanCommandRequest | null | undefined }>(
      url,
      { config: { route }, schema: { tags: ["rollouts"], params: jsonSchemaOf(PlanParams), body: jsonSchemaOf(PlanCommandRequest.nullish()), response: { 200: jsonSchemaOf(Rollout, "output") } } },
      async (req, reply) => {
        const reason = req.body?.reason ?? "";
        const out = await withStoreErrors(reply, "the command", () => command(req.params.plan_id, async (s, tx) => ({ ...(await step(s, now(), reason, tx)), result: undefined })));
        req.log.info({ plan_id: req.params.plan_id, command: route, phase: out.state.phase }, "rollout command");
        return toRollout(out.state);
      },
    );
  };

  const plugin: FastifyPluginAsync = (app) => {
    app.post<{ Body: CreateRolloutRequest }>(
      "/v1/rollouts",
      { config: { route: "createRollout" }, schema: { tags: ["rollouts"], body: jsonSchemaOf(CreateRolloutRequest), response: { 201: jsonSchemaOf(Rollout, "output") } } },
      async (req, reply) => {
        const body = req.body;
        const t0 = performance.now();
        const ids = [body.release_id, ...(body.previous_release_id !== null ? [body.previous_release_id] : [])];
        const known = await knownReleases(store.db, ids);
        // Before the engine's checks (its ROLLOUT_RELEASE_UNKNOWN would answer an unknown target first), and
        // again inside the insert's transaction below, so a withdraw in between cannot slip through.
        await checkRollbackTarget(store.db, body, now());
        // One read of the fleet serves both the membership (labels) and the pins (running releases).
        const fleet = await fleetWithReleases(store.db);
        const t1 = performance.now();
        const state = createPlan({ plan_id: `plan-${randomBytes(8).toString("hex")}`, request: body, fleet: fleet.nodes, releaseExists: (id) => known.has(id), now: now() });
        const t2 = performance.now();
        const pins = await pinsOf(store.db, state, fleet.releases);
        const t3 = performance.now();
        await withStoreErrors(reply, "the plan", () => insertPlan(store, state, pins, plans, (tx) => checkRollbackTarget(tx, body, state.created_at)));
        const t4 = performance.now();
        invalidate();
        app.metrics.rolloutPlans.inc();
        const ms = { read: Math.round(t1 - t0), plan: Math.round(t2 - t1), pins: Math.round(t3 - t2), write: Math.round(t4 - t3) };
        req.log.info({ plan_id: state.plan_id, release_id: state.release_id, members: state.nodes.length, ms }, "rollout plan created");
        return reply.code(201).send(toRollout(state));
      },
    );
    app.get<{ Querystring: z.infer<typeof ListQuery> }>(
      "/v1/rollouts",
      { config: { route: "listRollouts" }, schema: { tags: ["rollouts"], querystring: jsonSchemaOf(ListQuery), response: { 200: jsonSchemaOf(RolloutPage, "output") } } },
      async (req) => {
        const after = req.query.cursor !== undefined ? decodeCursor(req.query.cursor) : undefined;
        const page = await listPlans(store.db, { limit: req.query.limit, ...(after ? { after } : {}) });
        return { rollouts: page.states.map(toRolloutSummary), next_cursor: page.last ? encodeCursor(page.last) : null };
      },
    );
    app.get<{ Querystring: z.infer<typeof StuckQuery> }>(
      "/v1/rollouts/stuck",
      { config: { route: "stuckRollouts" }, schema: { tags: ["rollouts"], querystring: jsonSchemaOf(StuckQuery), response: { 200: jsonSchemaOf(StuckPlans, "output") } } },
      async (req) => {
        const stuck = [];
        for (const id of await livePlanIds(store.db)) {
          const row = await readPlan(store.db, store.dialect, id, "none", plans);
          const d = row ? diagnoseStuck(row.state, now(), req.query.threshold_seconds) : null;
          if (d) stuck.push(toStuckPlan(d));
        }
        return { stuck_plans: stuck };
      },
    );
    app.get<{ Params: z.infer<typeof PlanParams> }>(
      "/v1/rollouts/:plan_id",
      { config: { route: "getRollout" }, schema: { tags: ["rollouts"], params: jsonSchemaOf(PlanParams), response: { 200: jsonSchemaOf(Rollout, "output") } } },
      async (req) => {
        const row = await readPlan(store.db, store.dialect, req.params.plan_id, "none", plans);
        if (!row) throw notFound(req.params.plan_id);
        return toRollout(row.state);
      },
    );
    simple(app, "/v1/rollouts/:plan_id/pause", "pauseRollout", pause);
    simple(app, "/v1/rollouts/:plan_id/resume", "resumeRollout", resume);
    simple(app, "/v1/rollouts/:plan_id/cancel", "cancelRollout", cancel);
    simple(app, "/v1/rollouts/:plan_id/rollback", "rollbackRollout", async (s, at, reason, tx) => {
      await assertRollbackTargetLive(tx, s);
      return rollback(s, at, reason);
    });
    app.post<{ Params: z.infer<typeof PlanParams>; Body: RecoverRequest }>(
      "/v1/rollouts/:plan_id/recover",
      { config: { route: "recoverRollout" }, schema: { tags: ["rollouts"], params: jsonSchemaOf(PlanParams), body: jsonSchemaOf(RecoverRequest), response: { 200: jsonSchemaOf(Rollout, "output") } } },
      async (req, reply) => {
        const out = await withStoreErrors(reply, "the recovery", () =>
          command(req.params.plan_id, async (s, tx) => {
            if (req.body.strategy === "rollback") await assertRollbackTargetLive(tx, s);
            return { ...recover(s, req.body.strategy, now(), req.body.reason), result: undefined };
          }),
        );
        return toRollout(out.state);
      },
    );
    app.post<{ Params: z.infer<typeof StageParams>; Body: ApproveRequest | null | undefined }>(
      "/v1/rollouts/:plan_id/stages/:stage_id/approve",
      { config: { route: "approveStage" }, schema: { tags: ["rollouts"], params: jsonSchemaOf(StageParams), body: jsonSchemaOf(ApproveRequest.nullish()), response: { 200: jsonSchemaOf(ApproveResult, "output") } } },
      async (req, reply) => {
        const out = await withStoreErrors(reply, "the approval", () =>
          command(req.params.plan_id, async (s, tx) => {
            const at = now();
            const r = approveStage(s, req.params.stage_id, at, req.body?.reason ?? "", await observe(tx, store.dialect, s, at));
            return { state: r.state, effects: r.effects, result: { approved: r.approved, promoted: r.promoted, message: r.message } };
          }),
        );
        return out.result;
      },
    );
    app.get<{ Params: z.infer<typeof StageParams> }>(
      "/v1/rollouts/:plan_id/stages/:stage_id/gates",
      { config: { route: "stageGates" }, schema: { tags: ["rollouts"], params: jsonSchemaOf(StageParams), response: { 200: jsonSchemaOf(StageGates, "output") } } },
      async (req) => {
        const row = await readPlan(store.db, store.dialect, req.params.plan_id, "none", plans);
        if (!row) throw notFound(req.params.plan_id);
        const at = now();
        return stageGates(row.state, req.params.stage_id, at, await observe(store.db, store.dialect, row.state, at));
      },
    );
    app.addHook("onClose", async () => scheduler.stop());
    return Promise.resolve();
  };

  /**
   * A withdrawn release stops the live plans that name it (withdraw is the operator's stop button): a plan
   * whose release or rollback target it is, and that is active or waiting on a gate, is paused with the
   * reason, so no further batch starts with it. Resume after publishing a fix, or cancel; a rollback to a
   * withdrawn target is refused (assertRollbackTargetLive).
   */
  const onReleaseWithdrawn = async (releaseId: string): Promise<void> => {
    for (const id of await livePlanIds(store.db)) {
      const row = await readPlan(store.db, store.dialect, id);
      if (!row) continue;
      const role = row.state.release_id === releaseId ? "release" : row.state.previous_release_id === releaseId ? "rollback target" : undefined;
      if (role === undefined) continue;
      const pausable = (s: PlanState): boolean => s.phase === "active" || s.phase === "gate_wait";
      if (!pausable(row.state)) continue;
      await command(id, (s) => ({ ...(pausable(s) ? pause(s, now(), `${role} ${releaseId} withdrawn`) : { state: s, effects: [] }), result: undefined }));
      deps.log.warn({ plan_id: id, release_id: releaseId, role }, "rollout paused: release withdrawn");
    }
  };

  return { plugin, onAck: ackHook(deps, invalidate, plans), assignedReleaseOf: (nodeId) => cache.releaseFor(nodeId), onReleaseWithdrawn, scheduler };
}
