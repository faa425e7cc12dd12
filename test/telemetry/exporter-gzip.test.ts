/**
 * OTLP request compression: with `compression: "gzip"` every request carries
 * `Content-Encoding: gzip`, the (strict) receiver inflates and validates it,
 * and the same backlog costs a fraction of the bytes on the wire — what an
 * edge node on a metered or slow link wants.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Exporter, OtlpHttpLogsSink, Wal } from "../../src/telemetry/index.js";
import { otlpCompressionFromEnv } from "../../src/telemetry/exporter/destinations.js";
import type { Compression } from "../../src/telemetry/exporter/sinks.js";
import { startOtlpJsonLogsReceiver, wireBytes } from "../helpers/exporter-receivers.js";

let root = "";
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "exporter-gzip-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function drainWith(compression: Compression): Promise<{ bytes: number; records: number; violations: string[] }> {
  const dir = join(root, compression);
  const wal = await Wal.open(dir, { log: { warn: () => undefined, error: () => undefined } });
  await Promise.all(Array.from({ length: 500 }, (_, k) => wal.append({ type: "ai.policy.decision", tool: k % 2 ? "tool.echo" : "tool.shell", decision: k % 2 ? "allow" : "deny", policy_ref: "demo@1.0.0 (sha256:00)", reason: "forbidden by shell_deny", latency_us: 21.5 })));
  await wal.close();
  const rx = await startOtlpJsonLogsReceiver();
  const start = wireBytes.length;
  try {
    const ex = new Exporter({ wal: dir, nodeId: "edge-1", sink: new OtlpHttpLogsSink({ url: rx.url, serviceName: "edge-1", compression }), batchSize: 100 });
    const r = await ex.drainOnce();
    await ex.close();
    expect(r.caughtUp).toBe(true);
    return { bytes: wireBytes.slice(start).reduce((a, b) => a + b, 0), records: rx.arrivals.length, violations: rx.violations };
  } finally {
    await rx.close();
  }
}

describe("OTLP gzip compression", () => {
  it("delivers the same valid records in a fraction of the bytes", async () => {
    const plain = await drainWith("none");
    const gz = await drainWith("gzip");
    expect(plain).toMatchObject({ records: 500, violations: [] });
    expect(gz).toMatchObject({ records: 500, violations: [] });
    console.log(`[exporter-gzip] 500 decision records: ${plain.bytes} B plain, ${gz.bytes} B gzip (${((100 * gz.bytes) / plain.bytes).toFixed(1)} %)`);
    expect(gz.bytes).toBeLessThan(plain.bytes * 0.2);
  });

  it("reads the choice from the OTEL variables, logs-specific first", () => {
    expect(otlpCompressionFromEnv({ OTEL_EXPORTER_OTLP_COMPRESSION: "gzip" })).toBe("gzip");
    expect(otlpCompressionFromEnv({ OTEL_EXPORTER_OTLP_COMPRESSION: "gzip", OTEL_EXPORTER_OTLP_LOGS_COMPRESSION: "none" })).toBe("none");
    expect(otlpCompressionFromEnv({ OTEL_EXPORTER_OTLP_COMPRESSION: "zstd" })).toBeUndefined();
  });
});
