import { afterEach, expect, it } from "vitest";
import { behaviourSides } from "../rollouts/index.js";
import type { PlanState } from "../rollouts/index.js";
import { openTestCp } from "../../../test/helpers/cp-app.js";
import type { TestCp } from "../../../test/helpers/cp-app.js";
import { countEvent, observe } from "./observe.js";

let cp: TestCp | undefined;
afterEach(async () => {
  await cp?.close();
  cp = undefined;
});

const zero = () => ({ decisions: 0, denies: 0, tool_calls: 0, tool_errors: 0, activations_attempted: 0, activations_succeeded: 0 });

it("counts exactly the documented event shapes", () => {
  const c = zero();
  countEvent(c, "ai.policy.decision", { decision: "deny" });
  countEvent(c, "ai.policy.decision", { decision: "allow" });
  countEvent(c, "ai.policy.decision", { decision: "allow", follow_up: true });
  countEvent(c, "ai.policy.decision", { decision: "maybe" });
  countEvent(c, "ai.tool.result", { ok: true });
  countEvent(c, "ai.tool.result", { ok: false });
  countEvent(c, "ai.tool.result", { ok: false, error_code: "TOOL_FAILED" });
  countEvent(c, "ai.agent.action", { ok: false });
  countEvent(c, "ai.deployment.lifecycle", { phase: "activated" });
  countEvent(c, "ai.deployment.lifecycle", { phase: "activate_failed" });
  countEvent(c, "ai.deployment.lifecycle", { phase: "polled" });
  countEvent(c, "ai.telemetry.heartbeat", { decision: "deny" });
  expect(c).toEqual({ decisions: 2, denies: 1, tool_calls: 3, tool_errors: 2, activations_attempted: 2, activations_succeeded: 1 });
});

it("two behaviour gates with different windows each see every event of their window once", async () => {
  cp = await openTestCp();
  const now = Date.parse("2026-12-05T12:00:00Z");
  const ev = (id: string, minutesAgo: number, decision: string) => ({ event_id: id, event_type: "ai.policy.decision", node_id: "n1", timestamp: new Date(now - minutesAgo * 60_000).toISOString(), lock_fingerprint: null, release_id: "rel-00000000000000f1", attributes: JSON.stringify({ decision }), received_at: new Date(now - minutesAgo * 60_000).toISOString() });
  await cp.store.db.insertInto("events").values([ev("a", 50, "deny"), ev("b", 20, "allow"), ev("c", 5, "deny"), ev("d", 1, "allow")]).execute();
  const gate = (minutes: number) => ({ kind: "behaviour" as const, metric: "deny_rate" as const, comparison: "ratio" as const, threshold: 2, min_samples: 1, window_seconds: minutes * 60 });
  const stage = { stage_id: "s", gates: [gate(60), gate(10)], cumulative: 1, phase: "gate_wait" as const, started_at: 0, batch_finished_at: now - 3600_000, passed_at: null, manual_approved: false, approved_reason: "", last_gates: [] };
  const state = { release_id: "rel-00000000000000f0", nodes: [], stages: [stage], current_stage: 0, selector: null } as unknown as PlanState;
  const obs = await observe(cp.store.db, cp.store.dialect, state, now);
  // The rest side (another release than the plan's): 60 min → 4 decisions, 2 denies; 10 min → 2 decisions, 1 deny.
  expect(behaviourSides(state, stage, gate(60), now, obs.metrics ?? []).rest).toEqual({ samples: 4, bad: 2 });
  expect(behaviourSides(state, stage, gate(10), now, obs.metrics ?? []).rest).toEqual({ samples: 2, bad: 1 });
});
