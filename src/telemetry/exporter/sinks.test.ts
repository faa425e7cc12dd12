import { describe, expect, it } from "vitest";
import { ControlPlaneEventsSink, OtlpHttpLogsSink } from "./sinks.js";

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
