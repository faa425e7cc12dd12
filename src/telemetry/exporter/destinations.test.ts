import { describe, expect, it } from "vitest";
import { otlpHeadersFromEnv, sinkFor } from "./destinations.js";

describe("otlpHeadersFromEnv", () => {
  it("reads k=v pairs from both OTEL variables, URL-decoding values (the SDKs' format)", () => {
    expect(otlpHeadersFromEnv({ OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20abc, x-tenant = t1", OTEL_EXPORTER_OTLP_LOGS_HEADERS: "x-logs=1" }))
      .toEqual({ authorization: "Bearer abc", "x-tenant": "t1", "x-logs": "1" });
  });
  it("ignores empty and malformed pairs", () => {
    expect(otlpHeadersFromEnv({ OTEL_EXPORTER_OTLP_HEADERS: ",=v,novalue,k=" })).toEqual({ k: "" });
    expect(otlpHeadersFromEnv({})).toEqual({});
  });
});

describe("sinkFor", () => {
  it("is undefined without a destination, one sink for one, a fan-out for both", () => {
    expect(sinkFor({ nodeId: "n" })).toBeUndefined();
    expect(sinkFor({ nodeId: "n", otlpUrl: "http://127.0.0.1:4318" })?.name).toBe("otlp");
    expect(sinkFor({ nodeId: "n", otlpUrl: "http://127.0.0.1:4318", controlPlaneUrl: "http://127.0.0.1:8080" })?.name).toBe("otlp+control-plane");
  });
});
