import { describe, expect, it } from "vitest";
import { ControlPlaneEventsSink, OtlpHttpLogsSink, SinkUnavailable } from "./sinks.js";
import { toExportRecord } from "./record.js";

describe("sink endpoints", () => {
  it("append /v1/logs and /v1/events to the base URL's path; OTLP keeps its query as the query", () => {
    expect(new OtlpHttpLogsSink({ url: "http://h:4318", serviceName: "n" }).endpoint).toBe("http://h:4318/v1/logs");
    expect(new OtlpHttpLogsSink({ url: "http://h:4318/otlp/", serviceName: "n" }).endpoint).toBe("http://h:4318/otlp/v1/logs");
    expect(new OtlpHttpLogsSink({ url: "http://h/v1/logs", serviceName: "n" }).endpoint).toBe("http://h/v1/logs");
    expect(new OtlpHttpLogsSink({ url: "http://h/?api_key=k", serviceName: "n" }).endpoint).toBe("http://h/v1/logs?api_key=k");
    // The control plane is reached through the cpapi client (routes under the base path; the node credential authenticates, not a query).
    expect(new ControlPlaneEventsSink({ url: "https://cp.example/api" }).endpoint).toBe("https://cp.example/api/v1/events");
    expect(new ControlPlaneEventsSink({ url: "https://cp.example/" }).endpoint).toBe("https://cp.example/v1/events");
  });
});

describe("control-plane sink", () => {
  it("a node id the contract refuses (e.g. an upper-case host name) is a configuration problem: retried, never a reason to dead-letter the events", async () => {
    const sink = new ControlPlaneEventsSink({ url: "http://127.0.0.1:9" });
    const rec = toExportRecord({ seq: 1, event: { type: "ai.policy.decision", decision: "deny" } }, "Edge_HOST", 10, "0".repeat(32));
    const err = await sink.send([rec]).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(SinkUnavailable);
    expect(err).toMatchObject({ reason: "refused" });
  });
});
