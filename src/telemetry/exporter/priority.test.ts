import { describe, expect, it } from "vitest";
import { PRIORITY, eventNameOf, priorityOf, severityOf } from "./priority.js";

describe("eventNameOf (the original bridge's mapping)", () => {
  it.each([
    [{ kind: "decision" }, "ai.policy.decision"],
    [{ type: "action" }, "ai.agent.action"],
    [{ kind: "lifecycle" }, "ai.agent.lifecycle"],
    [{ kind: "error" }, "ai.agent.error"],
    [{ kind: "heartbeat" }, "ai.telemetry.heartbeat"],
    [{ type: "ai.policy.decision", decision: "deny" }, "ai.policy.decision"],
    [{ event_type: "ai.deployment.lifecycle" }, "ai.deployment.lifecycle"],
    [{ name: "os_reconstruction.started" }, "os_reconstruction.started"],
    [{}, "ai.telemetry.event"],
  ])("%j → %s", (event, name) => {
    expect(eventNameOf(event)).toBe(name);
  });
});

describe("priorityOf", () => {
  it("orders errors, decisions, lifecycle, the rest", () => {
    expect(priorityOf({ kind: "error" })).toBe(PRIORITY.error);
    expect(priorityOf({ type: "ai.agent.error" })).toBe(PRIORITY.error);
    expect(priorityOf({ type: "relay.segment.error" })).toBe(PRIORITY.error);
    expect(priorityOf({ kind: "heartbeat", level: "ERROR" })).toBe(PRIORITY.error);
    expect(priorityOf({ kind: "heartbeat", severity_number: 21 })).toBe(PRIORITY.error);
    expect(priorityOf({ type: "ai.policy.decision", errors: ["x"] })).toBe(PRIORITY.decision);
    expect(priorityOf({ kind: "decision" })).toBe(PRIORITY.decision);
    expect(priorityOf({ type: "ai.deployment.lifecycle", phase: "polled" })).toBe(PRIORITY.lifecycle);
    expect(priorityOf({ kind: "lifecycle" })).toBe(PRIORITY.lifecycle);
    expect(priorityOf({ kind: "heartbeat", level: "warn" })).toBe(PRIORITY.other);
    expect(priorityOf({})).toBe(PRIORITY.other);
  });

  it("an explicit numeric priority wins, rounded and clamped to 0–9", () => {
    expect(priorityOf({ kind: "error", priority: 0 })).toBe(0);
    expect(priorityOf({ kind: "heartbeat", priority: 7.4 })).toBe(7);
    expect(priorityOf({ priority: 1e9 })).toBe(9);
    expect(priorityOf({ priority: -3 })).toBe(0);
    expect(priorityOf({ kind: "error", priority: "high" })).toBe(PRIORITY.error);
  });

  it("severity: stated, else ERROR for errors and INFO otherwise", () => {
    expect(severityOf({ level: "warn" })).toEqual({ number: 13, text: "WARN" });
    expect(severityOf({ kind: "error" })).toEqual({ number: 17, text: "ERROR" });
    expect(severityOf({ kind: "decision" })).toEqual({ number: 9, text: "INFO" });
    expect(severityOf({ severityNumber: 22 })).toEqual({ number: 22, text: "FATAL2" });
  });
});
