/**
 * The scheduler's behaviour metrics are summed by the database (SQL
 * aggregation over the events' time index). The JavaScript `countEvent` is
 * the documented reference of what counts; on both dialects the SQL sums must
 * equal it exactly, event shape by event shape, including the shapes that
 * must NOT count (follow-up decisions, a "false" string, unknown phases,
 * missing or non-object attributes) and the window's edges.
 */
import { afterEach, expect, it } from "vitest";
import { countEvent, metricBuckets } from "../../src/orchestrator/plans/observe.js";
import type { MetricBucket } from "../../src/orchestrator/rollouts/index.js";
import { bearer, openTestCp } from "../helpers/cp-app.js";
import type { TestCp } from "../helpers/cp-app.js";
import { enrollNode, putRelease } from "../helpers/cp-fleet.js";
import { describeDialects } from "../helpers/databases.js";

const NOW = Date.parse("2026-12-05T12:00:00Z");
const R1 = "rel-00000000000000e1";
const R2 = "rel-00000000000000e2";

/** Every shape the counting rules distinguish (docs/control-plane.md, "Behaviour metrics"). */
const SHAPES: Array<[string, Record<string, unknown> | null | unknown[]]> = [
  ["ai.policy.decision", { decision: "deny" }],
  ["ai.policy.decision", { decision: "allow" }],
  ["ai.policy.decision", { decision: "allow", follow_up: true }],
  ["ai.policy.decision", { decision: "deny", follow_up: "true" }],
  ["ai.policy.decision", { decision: "deny", follow_up: false }],
  ["ai.policy.decision", { decision: "maybe" }],
  ["ai.policy.decision", { decision: ["deny"] }],
  ["ai.policy.decision", null],
  ["ai.tool.result", { ok: true }],
  ["ai.tool.result", { ok: false }],
  ["ai.tool.result", { ok: "false" }],
  ["ai.tool.result", { ok: 0 }],
  ["ai.tool.result", null],
  ["ai.tool.result", ["ok", false]],
  ["ai.deployment.lifecycle", { phase: "activated" }],
  ["ai.deployment.lifecycle", { phase: "activate_failed" }],
  ["ai.deployment.lifecycle", { phase: "polled" }],
  ["ai.deployment.lifecycle", { phase: { name: "activated" } }],
  ["ai.agent.action", { ok: false }],
];

describeDialects("behaviour metrics in SQL", (db) => {
  let cp: TestCp | undefined;
  afterEach(async () => {
    await cp?.close();
    cp = undefined;
  });

  /** Denies of R1 sent by edge-0 through POST /v1/events, dated by the node's own (skewed) clock. */
  async function sendDenies(c: TestCp, ids: string[], ts: string): Promise<void> {
    const cred = await enrollNode(c, "edge-0", { site: "a" });
    await putRelease(c.store, R1, 1);
    const events = ids.map((id) => ({ event_id: id, event_type: "ai.policy.decision", node_id: "edge-0", timestamp: ts, release_id: R1, attributes: { decision: "deny", release_id: R1 } }));
    const w = await c.app.inject({ method: "POST", url: "/v1/events", headers: bearer(cred), payload: { events } });
    expect(w.statusCode, w.body).toBe(200);
  }
  const deniesIn = (b: MetricBucket[]): number => b.reduce((s, x) => s + x.denies, 0);

  it("review3: events a node dates up to 24 h ahead are accepted, and a behaviour gate window evaluated now (server time) still counts them", async () => {
    const c = await openTestCp({ location: await db.fresh() });
    cp = c;
    const now = c.clock.now();
    await sendDenies(c, ["d1", "d2"], new Date(now + 60 * 60 * 1000).toISOString()); // node clock 1 h fast
    expect(deniesIn(await metricBuckets(c.store.db, c.store.dialect, now - 5 * 60 * 1000, now))).toBe(2);
  });

  it("review3: events of a node whose clock is 10 min behind still count in the gate window that follows its activation", async () => {
    const c = await openTestCp({ location: await db.fresh() });
    cp = c;
    const now = c.clock.now();
    await sendDenies(c, ["d3"], new Date(now - 10 * 60 * 1000).toISOString());
    // The batch finished 5 min ago (server time); the node denied since then, by its own slow clock 10 min ago.
    expect(deniesIn(await metricBuckets(c.store.db, c.store.dialect, now - 5 * 60 * 1000, now))).toBe(1);
  });

  it("the SQL sums equal countEvent over the same events, shape by shape, per node and release, inside the window only", async () => {
    cp = await openTestCp({ location: await db.fresh() });
    const rows = [];
    let seq = 0;
    // Three (node, release) groups; each shape appears a different number of times per group, inside
    // the window, exactly on its edges, and outside it.
    const groups: Array<[string, string | null]> = [["n1", R1], ["n2", R2], ["n3", null]];
    for (const [g, [node, release]] of groups.entries()) {
      for (const [i, [type, attrs]] of SHAPES.entries()) {
        for (let k = 0; k <= (i + g) % 3; k++) {
          for (const minutesAgo of [60, 30, 10, 0, 90]) {
            rows.push({
              event_id: `e-${++seq}`, event_type: type, node_id: node, timestamp: new Date(NOW - minutesAgo * 60_000 + (seq % 2 === 0 ? 1 : -1) * 3600_000).toISOString(), lock_fingerprint: null,
              release_id: release, attributes: attrs === null ? null : JSON.stringify(attrs), received_at: new Date(NOW - minutesAgo * 60_000).toISOString(),
            });
          }
        }
      }
    }
    await cp.store.db.insertInto("events").values(rows).execute();
    const from = NOW - 60 * 60_000;
    for (const openEnd of [false, true]) {
      const expected = new Map<string, MetricBucket>();
      for (const r of rows) {
        const t = Date.parse(r.received_at); // the window is the control plane's clock (review3), never the node's timestamp
        if (t < from || (openEnd ? t >= NOW : t > NOW) || !["ai.policy.decision", "ai.tool.result", "ai.deployment.lifecycle"].includes(r.event_type)) continue;
        const key = `${r.node_id}/${r.release_id ?? ""}`;
        const b = expected.get(key) ?? { node_id: r.node_id, release_id: r.release_id, from, to: NOW, decisions: 0, denies: 0, tool_calls: 0, tool_errors: 0, activations_attempted: 0, activations_succeeded: 0 };
        const parsed = r.attributes === null ? {} : (JSON.parse(r.attributes) as unknown);
        countEvent(b, r.event_type, typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {});
        expected.set(key, b);
      }
      const got = await metricBuckets(cp.store.db, cp.store.dialect, from, NOW, openEnd);
      const byKey = (bs: MetricBucket[]) => [...bs].sort((a, b) => `${a.node_id}/${a.release_id ?? ""}`.localeCompare(`${b.node_id}/${b.release_id ?? ""}`));
      expect(byKey(got)).toEqual(byKey([...expected.values()]));
      // Not vacuous: every counter is non-zero somewhere.
      for (const k of ["decisions", "denies", "tool_calls", "tool_errors", "activations_attempted", "activations_succeeded"] as const) expect(got.some((b) => b[k] > 0)).toBe(true);
    }
  });
});
