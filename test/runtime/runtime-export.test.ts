/**
 * The runtime's own exporter: with `telemetry.otlp_url` configured, decision
 * and lifecycle events reach an OTLP/HTTP receiver while the runtime serves,
 * an unavailable collector costs only delay (calls keep being answered and
 * logged durably), and confirmed sealed segments are reclaimed as the
 * exporter confirms them, so the WAL's disk use follows the backlog.
 */
import { afterEach, describe, expect, it } from "vitest";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildBundle } from "../../src/policy/index.js";
import { loadPolicy, telemetryWalDir } from "../../src/node/index.js";
import { DEFAULT_RUNTIME_CONFIG, startRuntime } from "../../src/runtime/index.js";
import type { RunningRuntime, RuntimeConfig } from "../../src/runtime/index.js";
import { readCommitted, readPos } from "../../src/telemetry/index.js";
import { startOtlpJsonLogsReceiver } from "../helpers/exporter-receivers.js";
import type { OtlpJsonLogsReceiver } from "../helpers/exporter-receivers.js";
import { EXAMPLE_POLICY_DIR } from "../helpers/policies.js";
import { bearerFor } from "../helpers/tool-server.js";

let bearer: Record<string, string> = {};

async function call(url: string, kind: string, params: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${url}/v1/tool`, { method: "POST", headers: { "content-type": "application/json", ...bearer }, body: JSON.stringify({ kind, params }) });
  return ((await res.json()) as { decision: string }).decision;
}

async function until(f: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`${what}: not reached in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const config = (telemetry: RuntimeConfig["telemetry"]): RuntimeConfig => ({ ...DEFAULT_RUNTIME_CONFIG, agentId: "a", node: { node_id: "edge-7" }, allowedDomains: [], upstreams: [], telemetry });

describe("runtime with telemetry.otlp_url", () => {
  let rt: RunningRuntime | undefined;
  let rx: OtlpJsonLogsReceiver | undefined;
  let root = "";
  afterEach(async () => {
    await rt?.close();
    await rx?.close();
    rt = undefined;
    rx = undefined;
    if (root) await rm(root, { recursive: true, force: true });
  });

  async function node(): Promise<string> {
    root = await mkdtemp(join(tmpdir(), "rt-export-"));
    const stateRoot = join(root, "node");
    const built = await buildBundle(EXAMPLE_POLICY_DIR, { name: "demo", version: "1.0.0" });
    (await loadPolicy(stateRoot, built.bytes)).loaded.engine.dispose();
    bearer = await bearerFor(stateRoot, "a");
    return stateRoot;
  }

  it("drains decision and lifecycle events to the collector while serving; a collector answering 503 costs only delay", async () => {
    const stateRoot = await node();
    rx = await startOtlpJsonLogsReceiver();
    let unavailable = true;
    rx.fault = () => (unavailable ? { status: 503 } : undefined);
    rt = await startRuntime({ stateRoot, config: config({ otlpUrl: rx.url }), listen: { host: "127.0.0.1", port: 0 }, exporterPollMs: 20 });
    const url = rt.url ?? "";
    const decisions: string[] = [];
    for (let k = 0; k < 10; k++) decisions.push(await call(url, k % 2 === 0 ? "tool.echo" : "tool.shell", { text: `t${k}`, command: "true" }));
    expect(decisions.filter((d) => d === "allow")).toHaveLength(5); // answered while the collector refused everything
    await until(() => (rx?.requests ?? 0) > 0, "the exporter tried the collector");
    expect(rx.accepted).toBe(0);
    unavailable = false;
    // runtime_started, the 10 decisions, and the 5 allowed calls' ai.tool.result (appended after the answer, without waiting).
    await until(() => new Set(rx?.arrivals.map((a) => a.seq)).size >= 16, "16 records delivered");
    expect(rx.violations).toEqual([]);
    const names = rx.arrivals.map((a) => a.eventName);
    expect(names.filter((n) => n === "ai.policy.decision")).toHaveLength(10);
    expect(names).toContain("ai.agent.lifecycle");
    expect(new Set(rx.arrivals.map((a) => a.nodeId))).toEqual(new Set(["edge-7"]));
    // Decisions (priority 2) before the older runtime_started event (priority 1).
    expect(rx.arrivals[rx.arrivals.length - 1]?.eventName).toBe("ai.agent.lifecycle");
    await until(async () => {
      const p = await readPos(telemetryWalDir(stateRoot));
      return p.kind === "ok" && p.pos >= 11;
    }, "telemetry.pos covers the delivered records");
    // What an operator on call sees: the WAL and the exporter in /v1/status. The exporter
    // records its position in memory once telemetry.pos is durable (after the directory
    // fsync), so the status can trail the file by that fsync: wait for it rather than race.
    type Status = { telemetry: { wal: { last_seq: number; decision_log: string }; exporter: { pos: number; sink: string } } };
    const readStatus = async (): Promise<Status> => (await (await fetch(`${url}/v1/status`, { headers: bearer })).json()) as Status;
    await until(async () => (await readStatus()).telemetry.exporter.pos >= 11, "/v1/status shows the durable position");
    const status = await readStatus();
    expect(status.telemetry.wal).toMatchObject({ decision_log: "durable" });
    expect(status.telemetry.wal.last_seq).toBeGreaterThanOrEqual(11);
    expect(status.telemetry.exporter).toMatchObject({ sink: "otlp" });
    expect(status.telemetry.exporter.pos).toBeGreaterThanOrEqual(11);
  }, 30_000);

  it("GET /v1/status shows the exporter's last error without the collector URL's password or query values", async () => {
    const stateRoot = await node();
    // Port 9 (discard) on loopback: nothing listens, so every attempt fails and becomes last_error.
    const otlpUrl = "http://collector:S3cretPassw0rd@127.0.0.1:9/?api_key=TOPSECRET";
    rt = await startRuntime({ stateRoot, config: config({ otlpUrl }), listen: { host: "127.0.0.1", port: 0 }, exporterPollMs: 20 });
    const url = rt.url ?? "";
    await call(url, "tool.echo", { text: "x" });
    let body = "";
    await until(async () => {
      body = await (await fetch(`${url}/v1/status`, { headers: bearer })).text();
      return body.includes('"last_error":{');
    }, "the exporter reported a delivery failure");
    expect(body).toContain("127.0.0.1:9");
    expect(body).not.toContain("S3cretPassw0rd");
    expect(body).not.toContain("TOPSECRET");
  }, 30_000);

  it("segment_bytes = 0 runs the node's WAL in seed-exact mode: only the seed's files in its directory while the exporter delivers", async () => {
    const stateRoot = await node();
    rx = await startOtlpJsonLogsReceiver({ light: true });
    rt = await startRuntime({ stateRoot, config: config({ otlpUrl: rx.url, segmentBytes: 0 }), listen: { host: "127.0.0.1", port: 0 }, exporterPollMs: 20 });
    const url = rt.url ?? "";
    for (let k = 0; k < 10; k++) await call(url, "tool.echo", { text: `k${k}` });
    // runtime_started, the 10 decisions, and the 5 allowed calls' ai.tool.result (appended after the answer, without waiting).
    await until(() => new Set(rx?.arrivals.map((a) => a.seq)).size >= 16, "16 records delivered");
    const status = (await (await fetch(`${url}/v1/status`, { headers: bearer })).json()) as { telemetry: { wal: { seed_exact: boolean; generation: string } } };
    expect(status.telemetry.wal).toMatchObject({ seed_exact: true, generation: expect.stringMatching(/^[0-9a-f]{32}$/) as unknown });
    const walDir = telemetryWalDir(stateRoot);
    const exporterFiles = ["telemetry.pos", "telemetry.pos.tmp"]; // the exporter's lock and dead letters lie beside the directory
    // telemetry.safe_seq.tmp is the seed's own in-flight safe point (seed 001 writeSafeSeq): a
    // tool result appended without waiting may be mid-write when the directory is listed.
    const seedFiles = (await readdir(walDir)).filter((n) => !exporterFiles.includes(n) && n !== "telemetry.safe_seq.tmp");
    expect(seedFiles.sort()).toEqual(["telemetry.safe_seq", "telemetry.wal"]);
  }, 30_000);

  it("reclaims sealed segments as soon as the exporter has confirmed them", async () => {
    const stateRoot = await node();
    rx = await startOtlpJsonLogsReceiver({ light: true });
    rt = await startRuntime({ stateRoot, config: config({ otlpUrl: rx.url, segmentBytes: 4096 }), listen: { host: "127.0.0.1", port: 0 }, exporterPollMs: 20 });
    const url = rt.url ?? "";
    await Promise.all(Array.from({ length: 8 }, async (_, w) => {
      for (let k = 0; k < 25; k++) await call(url, "tool.echo", { text: `w${w}k${k}` });
    }));
    const walDir = telemetryWalDir(stateRoot);
    await until(() => new Set(rx?.arrivals.map((a) => a.seq)).size >= 201, "201 records delivered");
    await call(url, "tool.echo", { text: "one more" }); // keeps the exporter's next pass (and its reclaim) coming
    await until(async () => (await readdir(walDir)).includes("telemetry.wal.base"), "a reclamation");
    // Stop the runtime before reading: a reclamation racing the read-only reader (base read,
    // then segments listed after more were reclaimed) is not what this test checks.
    await rt.close();
    rt = undefined;
    const { entries, inspection } = await readCommitted(walDir);
    expect(inspection.fail_hard).toBeNull();
    expect(inspection.base).toBeGreaterThan(0);
    // The retained WAL starts right after the base (it may be empty: the last append can fill and seal a segment, which is then reclaimed).
    expect(entries[0]?.seq ?? inspection.safe_seq).toBe(entries.length > 0 ? inspection.base + 1 : inspection.base);
    const pos = await readPos(walDir);
    expect(pos.kind === "ok" && pos.pos >= inspection.base).toBe(true);
  }, 30_000);
});
