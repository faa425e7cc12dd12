import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeLogsRequest, fromAnyValue, toAnyValue } from "./otlp.js";
import { eventTimeNanos, nanosToRfc3339, toExportRecord } from "./record.js";
import { toIngestEvent } from "./cp-event.js";

const GEN = "0123456789abcdef0123456789abcdef";

describe("OTLP JSON encoding", () => {
  it("AnyValue round-trips any JSON object (fast-check)", () => {
    fc.assert(fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (obj) => {
      const back = fromAnyValue(JSON.parse(JSON.stringify(toAnyValue(obj))));
      expect(back).toEqual(JSON.parse(JSON.stringify(obj)));
    }), { numRuns: 200 });
  });

  it("encodes one record as the OTLP/HTTP JSON mapping expects", () => {
    const rec = toExportRecord({ seq: 42, event: { type: "ai.policy.decision", timestamp: "2024-05-01T12:00:00.123456789Z", decision: "deny", trace_id: "0123456789ABCDEF0123456789abcdef", span_id: "0123456789abcdef", n: 3, x: 1.5 } }, "node-7", 100, GEN);
    const req = encodeLogsRequest([rec], "node-7", 1_700_000_000_000_000_000n);
    const rl = req.resourceLogs[0];
    expect(rl?.resource.attributes).toEqual([{ key: "service.name", value: { stringValue: "node-7" } }]);
    const lr = rl?.scopeLogs[0]?.logRecords[0];
    expect(lr).toMatchObject({
      timeUnixNano: "1714564800123456789",
      observedTimeUnixNano: "1700000000000000000",
      severityNumber: 9,
      severityText: "INFO",
      eventName: "ai.policy.decision",
      traceId: "0123456789abcdef0123456789abcdef",
      spanId: "0123456789abcdef",
    });
    expect(lr?.attributes).toEqual([
      { key: "event.name", value: { stringValue: "ai.policy.decision" } },
      { key: "autonomy.seq", value: { intValue: "42" } },
      { key: "autonomy.wal_generation", value: { stringValue: GEN } },
      { key: "event.id", value: { stringValue: `node-7:wal:${GEN}:42` } },
      { key: "autonomy.node_id", value: { stringValue: "node-7" } },
      { key: "autonomy.priority", value: { intValue: "2" } },
    ]);
    expect(fromAnyValue(lr?.body)).toEqual(rec.event);
  });

  it("an event without a time gets timeUnixNano 0 (unknown) for OTLP and the export time for the control plane", () => {
    const rec = toExportRecord({ seq: 1, event: { kind: "lifecycle" } }, "n", 10, GEN);
    expect(encodeLogsRequest([rec], "n", 5n).resourceLogs[0]?.scopeLogs[0]?.logRecords[0]?.timeUnixNano).toBe("0");
    expect(toIngestEvent(rec, Date.parse("2024-01-02T03:04:05.678Z"))).toEqual({
      event_id: `n:wal:${GEN}:1`, event_type: "ai.agent.lifecycle", node_id: "n", timestamp: "2024-01-02T03:04:05.678Z", attributes: { kind: "lifecycle" },
    });
  });

  it("parses RFC 3339 with offsets and nanoseconds, and epoch milliseconds", () => {
    expect(eventTimeNanos({ timestamp: "2024-05-01T14:00:00.5+02:00" })).toBe(1714564800500000000n);
    expect(eventTimeNanos({ time: 1714564800123 })).toBe(1714564800123000000n);
    expect(eventTimeNanos({ timestamp: "yesterday" })).toBeUndefined();
    expect(nanosToRfc3339(1714564800123456789n)).toBe("2024-05-01T12:00:00.123456789Z");
    expect(nanosToRfc3339(1714564800000000000n)).toBe("2024-05-01T12:00:00.000Z");
  });
});
