import { sql } from "kysely";
import type { Kysely, RawBuilder } from "kysely";
import type { Labels } from "../../cpapi/index.js";
import type { Store } from "../db/connect.js";
import type { Database } from "../db/schema.js";
import type { FleetNode, MetricBucket, Observations, PlanState } from "../rollouts/index.js";

/**
 * What the scheduler observes for a plan at a tick (the engine's
 * Observations), read from the store:
 *
 * - `node_releases`: each member's current release from its heartbeat
 *   (nodes.release_id), only when this control plane offered it to that node
 *   (node_offers: its poll was answered it), else null: confirms activations
 *   whose ack was lost and rollbacks.
 * - `fleet`: every enrolled node with its labels, only for selector plans
 *   (late joiners).
 * - `metrics`: behaviour counters from ingested events, only when the open
 *   stage has a behaviour gate and its batch is done. One bucket per
 *   (node, event release_id) over [from, now], from = max(batch finished,
 *   now − window). What counts (docs/control-plane.md, "Behaviour metrics"):
 *     ai.policy.decision      attributes.decision "allow" | "deny" → decisions (+ denies);
 *                             attributes.follow_up === true is not a call of its own: skipped
 *     ai.tool.result          one tool call; attributes.ok === false → a tool error
 *     ai.deployment.lifecycle attributes.phase "activated" → attempted + succeeded;
 *                             "activate_failed" → attempted
 *   The event's top-level release_id says which side it counts for. The database sums
 *   them (metricBuckets: one row per node and release); countEvent is the reference a test
 *   holds the SQL to, on both dialects.
 */

const CHUNK = 500;
export const METRIC_EVENT_TYPES = ["ai.policy.decision", "ai.tool.result", "ai.deployment.lifecycle"] as const;

const iso = (ms: number): string => new Date(ms).toISOString();

async function nodeReleases(db: Kysely<Database>, ids: readonly string[]): Promise<Record<string, string | null>> {
  const out: Record<string, string | null> = {};
  for (let i = 0; i < ids.length; i += CHUNK) {
    // Only a release this control plane answered to the node's own poll (node_offers) counts: a heartbeat
    // naming a release the node never fetched from here confirms neither an activation nor a rollback.
    const rows = await db
      .selectFrom("nodes")
      .leftJoin("node_offers", (j) => j.onRef("node_offers.node_id", "=", "nodes.node_id").onRef("node_offers.release_id", "=", "nodes.release_id"))
      .select(["nodes.node_id", "nodes.release_id", "node_offers.offered_at"])
      .where("nodes.node_id", "in", ids.slice(i, i + CHUNK))
      .execute();
    for (const r of rows) out[r.node_id] = r.offered_at !== null ? r.release_id : null;
  }
  return out;
}

export async function fleetOf(db: Kysely<Database>): Promise<FleetNode[]> {
  const rows = await db.selectFrom("nodes").select(["node_id", "labels"]).execute();
  return rows.map((r) => ({ node_id: r.node_id, labels: JSON.parse(r.labels) as Labels }));
}

/** Every enrolled node with its labels, and the release each runs (heartbeat): what plan creation reads. */
export async function fleetWithReleases(db: Kysely<Database>): Promise<{ nodes: FleetNode[]; releases: Map<string, string | null> }> {
  const rows = await db.selectFrom("nodes").select(["node_id", "labels", "release_id"]).execute();
  return { nodes: rows.map((r) => ({ node_id: r.node_id, labels: JSON.parse(r.labels) as Labels })), releases: new Map(rows.map((r) => [r.node_id, r.release_id])) };
}

type Counters = Omit<MetricBucket, "node_id" | "release_id" | "from" | "to">;

/** Adds one event to its bucket's counters (the table in the module comment). */
export function countEvent(c: Counters, eventType: string, attributes: Record<string, unknown>): void {
  if (eventType === "ai.policy.decision") {
    if (attributes["follow_up"] === true) return;
    const d = attributes["decision"];
    if (d !== "allow" && d !== "deny") return;
    c.decisions += 1;
    if (d === "deny") c.denies += 1;
  } else if (eventType === "ai.tool.result") {
    c.tool_calls += 1;
    if (attributes["ok"] === false) c.tool_errors += 1;
  } else if (eventType === "ai.deployment.lifecycle") {
    const phase = attributes["phase"];
    if (phase === "activated") {
      c.activations_attempted += 1;
      c.activations_succeeded += 1;
    } else if (phase === "activate_failed") c.activations_attempted += 1;
  }
}

/**
 * The SQL twin of {@link countEvent}, per dialect: `e.a` is the event's
 * attributes as JSON (an empty object when absent or not JSON). Kept beside
 * countEvent on purpose: a test runs both over the same rows, on both
 * dialects, and they must agree exactly.
 */
const FILTERS = {
  sqlite: {
    decision: sql`e.event_type = 'ai.policy.decision' and json_type(e.a, '$.follow_up') is not 'true' and json_type(e.a, '$.decision') = 'text'`,
    decisionIs: (v: string) => sql`json_extract(e.a, '$.decision') = ${v}`,
    toolError: sql`json_type(e.a, '$.ok') = 'false'`,
    phaseIs: (v: string) => sql`json_type(e.a, '$.phase') = 'text' and json_extract(e.a, '$.phase') = ${v}`,
    attributes: sql`case when json_valid(attributes) then attributes else '{}' end`,
  },
  postgres: {
    decision: sql`e.event_type = 'ai.policy.decision' and (e.a -> 'follow_up') is distinct from 'true'::jsonb and jsonb_typeof(e.a -> 'decision') = 'string'`,
    decisionIs: (v: string) => sql`(e.a ->> 'decision') = ${v}`,
    toolError: sql`(e.a -> 'ok') = 'false'::jsonb`,
    phaseIs: (v: string) => sql`jsonb_typeof(e.a -> 'phase') = 'string' and (e.a ->> 'phase') = ${v}`,
    // The ingest route stores attributes as JSON.stringify of an object, so the cast cannot fail.
    attributes: sql`coalesce(attributes::jsonb, '{}'::jsonb)`,
  },
} as const;

interface BucketRow {
  node_id: string;
  release_id: string | null;
  decisions: number | string;
  denies: number | string;
  tool_calls: number | string;
  tool_errors: number | string;
  activations_attempted: number | string;
  activations_succeeded: number | string;
}

/**
 * The buckets of every node over [from, to] ([from, to) with `openEnd`) of
 * the control plane's clock: events are selected by `received_at`, never by
 * the node's own `timestamp` (a node whose clock is skewed would date its
 * denies out of the gate window; the index is migration 0012),
 * summed by the database (one row per node and release, over the events'
 * time index), not by reading every event of the window into the scheduler.
 */
export async function metricBuckets(db: Kysely<Database>, dialect: Store["dialect"], from: number, to: number, openEnd = false): Promise<MetricBucket[]> {
  const f = FILTERS[dialect];
  const types = sql.join(METRIC_EVENT_TYPES.map((t) => sql`${t}`));
  const count = (cond: RawBuilder<unknown>): RawBuilder<unknown> => sql`sum(case when ${cond} then 1 else 0 end)`;
  const toolResult = sql`e.event_type = 'ai.tool.result'`;
  const lifecycle = sql`e.event_type = 'ai.deployment.lifecycle'`;
  const q = sql<BucketRow>`
    with e as (
      select node_id, release_id, event_type, ${f.attributes} as a from events
      where event_type in (${types}) and received_at >= ${iso(from)} and received_at ${openEnd ? sql`<` : sql`<=`} ${iso(to)}
    )
    select node_id, release_id,
      ${count(sql`${f.decision} and ${f.decisionIs("allow")} or ${f.decision} and ${f.decisionIs("deny")}`)} as decisions,
      ${count(sql`${f.decision} and ${f.decisionIs("deny")}`)} as denies,
      ${count(toolResult)} as tool_calls,
      ${count(sql`${toolResult} and ${f.toolError}`)} as tool_errors,
      ${count(sql`${lifecycle} and (${f.phaseIs("activated")} or ${f.phaseIs("activate_failed")})`)} as activations_attempted,
      ${count(sql`${lifecycle} and ${f.phaseIs("activated")}`)} as activations_succeeded
    from e group by node_id, release_id`;
  const { rows } = await q.execute(db);
  return rows.map((r) => ({
    node_id: r.node_id,
    release_id: r.release_id,
    from,
    to,
    decisions: Number(r.decisions),
    denies: Number(r.denies),
    tool_calls: Number(r.tool_calls),
    tool_errors: Number(r.tool_errors),
    activations_attempted: Number(r.activations_attempted),
    activations_succeeded: Number(r.activations_succeeded),
  }));
}

/** Everything the engine may use at this tick for `state`. */
export async function observe(db: Kysely<Database>, dialect: Store["dialect"], state: PlanState, now: number): Promise<Observations> {
  const obs: Observations = { node_releases: await nodeReleases(db, state.nodes.map((n) => n.node_id)) };
  if (state.selector !== null) obs.fleet = await fleetOf(db);
  const stage = state.stages[state.current_stage];
  const finished = stage?.batch_finished_at ?? null;
  const windows = new Set<number>();
  for (const g of stage?.gates ?? []) if (g.kind === "behaviour" && finished !== null) windows.add(Math.max(finished, now - g.window_seconds * 1000));
  if (windows.size > 0) {
    // Disjoint segments between the gates' window starts: a gate takes the segments that start
    // inside its window (the engine keeps buckets with from ≥ its start), so no event counts twice.
    const starts = [...windows].sort((x, y) => x - y);
    const metrics: MetricBucket[] = [];
    for (let i = 0; i < starts.length; i++) {
      const next = starts[i + 1];
      metrics.push(...(await metricBuckets(db, dialect, starts[i] ?? now, next ?? now, next !== undefined)));
    }
    obs.metrics = metrics;
  }
  return obs;
}
