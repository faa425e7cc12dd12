
import type { Kysely } from "kysely";
import type { Store } from "../db/connect.js";
import type { Database } from "../db/schema.js";
import { withWriteTransaction } from "../db/write-lock.js";
import { OrchestratorError } from "../errors.js";
import { RolloutError, parsePlanState } from "../rollouts/index.js";
import { baseReleaseOf } from "./rollback-target.js";
import type { PlanStateCache } from "./state-cache.js";
import type { Effect, PlanState } from "../rollouts/index.js";

/**
 * The store side of rollouts. Every state change is ONE transaction: read the
 * plan (version v) → one engine step → write the new state as v+1 `WHERE
 * version = v` → apply the step's effects (node assignments). A lost race
 * (0 rows updated) rolls the whole transaction back and is retried; nothing is
 * ever half-written.
 */

const iso = (ms: number): string => new Date(ms).toISOString();

export interface PlanRow {
  state: PlanState;
  version: number;
  /** The stored JSON text of `state` (a step compares against it instead of serialising twice). */
  json: string;
}

/** A lost optimistic race: another writer stepped the plan between our read and our write. */
class LostRace extends Error {}

/** How often a command re-runs after losing a race before answering 409 ROLLOUT_CONFLICT. */
const RACE_RETRIES = 5;

export function notFound(planId: string): RolloutError {
  return new RolloutError("ROLLOUT_NOT_FOUND", `no rollout plan ${planId}`, { plan_id: planId });
}

/**
 * Reads one plan inside `tx`. `lock`: on PostgreSQL `wait` takes the row lock
 * (FOR UPDATE: a command waits for a concurrent step), `skip` skips a row
 * another server holds (FOR UPDATE SKIP LOCKED: the scheduler leaves a plan
 * another server is ticking); SQLite's BEGIN IMMEDIATE already excludes writers.
 */
export async function readPlan(tx: Kysely<Database>, dialect: Store["dialect"], planId: string, lock: "none" | "wait" | "skip" = "none", cache?: PlanStateCache): Promise<PlanRow | undefined> {
  if (cache !== undefined) {
    // The version alone (under the same lock) decides whether the cached state is the stored one.
    let v = tx.selectFrom("rollout_plans").select("version").where("plan_id", "=", planId);
    if (dialect === "postgres" && lock === "wait") v = v.forUpdate();
    if (dialect === "postgres" && lock === "skip") v = v.forUpdate().skipLocked();
    const head = await v.executeTakeFirst();
    if (!head) return undefined;
    const hit = cache.get(planId, Number(head.version));
    if (hit) return { state: hit.state, version: hit.version, json: hit.json };
  }
  let q = tx.selectFrom("rollout_plans").select(["state", "version"]).where("plan_id", "=", planId);
  if (dialect === "postgres" && lock === "wait") q = q.forUpdate();
  if (dialect === "postgres" && lock === "skip") q = q.forUpdate().skipLocked();
  const row = await q.executeTakeFirst();
  if (!row) return undefined;
  const out = { state: parsePlanState(JSON.parse(row.state) as unknown), version: Number(row.version), json: row.state };
  // A committed row (read before this transaction writes the plan): safe to cache at once.
  cache?.put(planId, out);
  return out;
}

/** Writes the stepped state as version v+1 where the row is still at v; throws LostRace otherwise. */
async function writePlan(tx: Kysely<Database>, before: PlanRow, after: PlanState, json: string): Promise<void> {
  const r = await tx
    .updateTable("rollout_plans")
    .set({ state: json, version: before.version + 1, phase: after.phase, updated_at: iso(after.updated_at) })
    .where("plan_id", "=", after.plan_id)
    .where("version", "=", before.version)
    .executeTakeFirst();
  if (r.numUpdatedRows !== 1n) throw new LostRace();
}

/** Rows per multi-row upsert: 4 parameters each, far below SQLite's and PostgreSQL's parameter limits. */
const ASSIGN_CHUNK = 500;

/**
 * Upserts nodes' desired releases (the node_id is the key: the latest decision
 * wins), in multi-row statements of {@link ASSIGN_CHUNK}: one round trip per
 * chunk, not per node (a 1,000-node plan's pins cost 2 statements, VAL07).
 * The map holds each node once (one statement may not update a row twice).
 */
export async function assignMany(tx: Kysely<Database>, releases: ReadonlyMap<string, string>, planId: string, now: number): Promise<void> {
  const at = iso(now);
  // Sorted by node id: every writer locks the rows in the same order, so two plans created at once over
  // the same nodes queue on PostgreSQL's row locks instead of deadlocking (plan order differs per plan).
  const sorted = [...releases].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const rows = sorted.map(([node_id, release_id]) => ({ node_id, release_id, plan_id: planId, assigned_at: at }));
  for (let i = 0; i < rows.length; i += ASSIGN_CHUNK) {
    await tx
      .insertInto("node_assignments")
      .values(rows.slice(i, i + ASSIGN_CHUNK))
      .onConflict((oc) => oc.column("node_id").doUpdateSet((eb) => ({ release_id: eb.ref("excluded.release_id"), plan_id: eb.ref("excluded.plan_id"), assigned_at: eb.ref("excluded.assigned_at") })))
      .execute();
  }
}

/**
 * Where a member waits until the plan starts it: the release it runs now
 * (heartbeat), else the channel's release below the plan's ({@link baseReleaseOf}).
 * Never the plan's previous release: under the rollback-release model it is
 * ABOVE the plan's release, and a node pinned there would refuse the plan's
 * release when its batch starts.
 */
export function pinOf(current: string | null, base: string | null): string | null {
  return current ?? base;
}

/**
 * The effects that touch the store: `start` and `rollback` move the node's
 * assignment; a late joiner included in a batch is pinned like the members
 * were at creation (so it does not take the channel's latest before its
 * batch starts). Returns whether any assignment changed.
 */
export async function applyEffects(tx: Kysely<Database>, state: PlanState, effects: readonly Effect[], now: number): Promise<boolean> {
  // In effect order, the last decision per node wins (as one upsert per effect would leave it).
  const next = new Map<string, string>();
  let base: string | null | undefined;
  for (const e of effects) {
    if (e.kind === "start" || e.kind === "rollback") {
      next.delete(e.node_id);
      next.set(e.node_id, e.release_id);
    } else if (e.kind === "late_joiner" && e.action === "included") {
      const node = await tx.selectFrom("nodes").select("release_id").where("node_id", "=", e.node_id).executeTakeFirst();
      const current = node?.release_id ?? null;
      if (current === null && base === undefined) base = await baseReleaseOf(tx, state.release_id);
      const pin = pinOf(current, base ?? null);
      if (pin !== null) {
        next.delete(e.node_id);
        next.set(e.node_id, pin);
      }
    }
  }
  if (next.size === 0) return false;
  await assignMany(tx, next, state.plan_id, now);
  return true;
}

export interface StepOutcome<R> {
  state: PlanState;
  effects: Effect[];
  result: R;
}

/** What a step function returns: the engine's transition plus anything the caller wants back. */
export type StepFn<R> = (state: PlanState, tx: Kysely<Database>) => Promise<{ state: PlanState; effects: Effect[]; result: R }> | { state: PlanState; effects: Effect[]; result: R };

/**
 * One step inside an open transaction `tx` (the ack hook runs inside the ack's
 * own transaction). Unchanged state (the same object back) writes nothing.
 * Returns undefined when the plan does not exist (or, with lock "skip",
 * another server holds it).
 */
export async function stepInTx<R>(
  tx: Kysely<Database>,
  dialect: Store["dialect"],
  planId: string,
  now: number,
  fn: StepFn<R>,
  lock: "wait" | "skip" = "wait",
  cache?: PlanStateCache,
): Promise<(StepOutcome<R> & { assignmentsChanged: boolean; committed: () => void }) | undefined> {
  const row = await readPlan(tx, dialect, planId, lock, cache);
  if (!row) return undefined;
  const out = await fn(row.state, tx);
  const unchanged = { ...out, state: row.state, assignmentsChanged: false, committed: () => undefined };
  if (out.state === row.state) return unchanged;
  // One serialisation per step: it is both the change test and the text written.
  const json = JSON.stringify(out.state);
  // A step that changed nothing (most ticks) writes nothing: no version bump, no row rewrite.
  if (out.effects.length === 0 && json === row.json) return unchanged;
  await writePlan(tx, row, out.state, json);
  const assignmentsChanged = await applyEffects(tx, out.state, out.effects, now);
  // Cached only once the transaction has committed (the caller runs this after the commit).
  const committed = (): void => cache?.put(planId, { version: row.version + 1, state: out.state, json });
  return { ...out, assignmentsChanged, committed };
}

/**
 * One step in its own write transaction, retried on a lost race (then 409
 * ROLLOUT_CONFLICT). `onCommit` runs after the commit (cache invalidation).
 */
export async function stepPlan<R>(store: Store, planId: string, now: () => number, fn: StepFn<R>, opts: { lock?: "wait" | "skip"; onAssignments?: () => void; cache?: PlanStateCache } = {}): Promise<StepOutcome<R> | undefined> {
  for (let attempt = 0; ; attempt++) {
    try {
      const out = await withWriteTransaction(store, (tx) => stepInTx(tx, store.dialect, planId, now(), fn, opts.lock ?? "wait", opts.cache));
      out?.committed();
      if (out?.assignmentsChanged === true) opts.onAssignments?.();
      return out;
    } catch (e) {
      if (!(e instanceof LostRace)) throw e;
      if (attempt >= RACE_RETRIES) throw new OrchestratorError("ROLLOUT_CONFLICT", `plan ${planId} changed under this request ${RACE_RETRIES + 1} times in a row; nothing of it was kept`);
    }
  }
}

/** Stores a new plan and pins its members (see `pinMembers`), in one transaction. */
/** `guard` runs first inside the insert's transaction (the rollback-target check): throwing writes nothing. */
export async function insertPlan(store: Store, state: PlanState, pins: ReadonlyMap<string, string>, cache?: PlanStateCache, guard?: (tx: Kysely<Database>) => Promise<void>): Promise<void> {
  const json = JSON.stringify(state);
  await withWriteTransaction(store, async (tx) => {
    await guard?.(tx);
    await tx
      .insertInto("rollout_plans")
      .values({ plan_id: state.plan_id, release_id: state.release_id, phase: state.phase, state: json, version: 1, created_at: iso(state.created_at), updated_at: iso(state.updated_at) })
      .execute();
    await assignMany(tx, pins, state.plan_id, state.created_at);
  });
  cache?.put(state.plan_id, { version: 1, state, json });
}

/** Plan ids the scheduler ticks: every plan not in a terminal phase. */
export async function livePlanIds(db: Kysely<Database>): Promise<string[]> {
  const rows = await db.selectFrom("rollout_plans").select("plan_id").where("phase", "not in", ["completed", "cancelled", "rolled_back"]).orderBy("created_at").execute();
  return rows.map((r) => r.plan_id);
}

/** Newest first, paged by (created_at, plan_id). */
export async function listPlans(db: Kysely<Database>, q: { limit: number; after?: { c: string; p: string } }): Promise<{ states: PlanState[]; last: { c: string; p: string } | undefined }> {
  let query = db.selectFrom("rollout_plans").select(["plan_id", "state", "created_at"]);
  const after = q.after;
  if (after !== undefined) query = query.where((eb) => eb.or([eb("created_at", "<", after.c), eb.and([eb("created_at", "=", after.c), eb("plan_id", "<", after.p)])]));
  const rows = await query.orderBy("created_at", "desc").orderBy("plan_id", "desc").limit(q.limit + 1).execute();
  const page = rows.slice(0, q.limit);
  const last = page.at(-1);
  return { states: page.map((r) => parsePlanState(JSON.parse(r.state) as unknown)), last: rows.length > q.limit && last ? { c: last.created_at, p: last.plan_id } : undefined };
}

/** A node's assignment, or undefined. */
export async function assignmentOf(db: Kysely<Database>, nodeId: string): Promise<{ release_id: string; plan_id: string } | undefined> {
  return db.selectFrom("node_assignments").select(["release_id", "plan_id"]).where("node_id", "=", nodeId).executeTakeFirst();
}

/** Used by tests and the status view: every assignment of a plan. */
export async function assignmentsOfPlan(db: Kysely<Database>, planId: string): Promise<Array<{ node_id: string; release_id: string }>> {
  return db.selectFrom("node_assignments").select(["node_id", "release_id"]).where("plan_id", "=", planId).orderBy("node_id").execute();
}

