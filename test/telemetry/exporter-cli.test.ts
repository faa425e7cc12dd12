/**
 * `autonomy telemetry drain|export` as child processes (through
 * test/helpers/exporter-cli-main.ts, the same registerTelemetry and main() as the
 * binary), against our OTLP/HTTP JSON receiver and the control-plane contract
 * test server on loopback, on real WAL files.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { Wal, nodeWalFs, readGeneration, readPos, walPaths } from "../../src/telemetry/index.js";
import { REPO_ROOT, runProcess } from "../helpers/cli.js";
import type { RunResult } from "../helpers/cli.js";
import { startControlPlaneEventsContractServer, startOtlpJsonLogsReceiver } from "../helpers/exporter-receivers.js";

const MAIN = join(REPO_ROOT, "test/helpers/exporter-cli-main.ts");
const silent = { warn: () => undefined, error: () => undefined };
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function cli(args: string[]): Promise<RunResult> {
  return runProcess(process.execPath, ["--import", "tsx", MAIN, ...args], { env: { AUTONOMY_DEBUG: undefined } });
}

async function walDir(n: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "exporter-cli-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const wal = await Wal.open(dir, { log: silent });
  await Promise.all(Array.from({ length: n }, (_, i) => wal.append(i % 3 === 0 ? { kind: "error", i } : i % 3 === 1 ? { type: "ai.policy.decision", i } : { kind: "heartbeat", i })));
  await wal.close();
  return dir;
}

describe("autonomy telemetry", () => {
  it("export prints committed entries as JSON lines with their priority, read-only", async () => {
    const dir = await walDir(6);
    const before = await readFile(walPaths(dir).wal);
    const r = await cli(["telemetry", "export", "--dir", dir, "--from", "4"]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([
      { seq: 4, priority: 3, event_name: "ai.agent.error", event: { kind: "error", i: 3 } },
      { seq: 5, priority: 2, event_name: "ai.policy.decision", event: { type: "ai.policy.decision", i: 4 } },
      { seq: 6, priority: 0, event_name: "ai.telemetry.heartbeat", event: { kind: "heartbeat", i: 5 } },
    ]);
    expect(await readFile(walPaths(dir).wal)).toEqual(before);
    expect(await readPos(dir)).toEqual({ kind: "missing" });
  });

  it("drain --once delivers to the collector and the control plane and exits 0 when caught up", async () => {
    const dir = await walDir(50);
    const rx = await startOtlpJsonLogsReceiver();
    const cp = await startControlPlaneEventsContractServer();
    cleanups.push(() => rx.close(), () => cp.close());
    const r = await cli(["telemetry", "drain", "--dir", dir, "--otlp-url", rx.url, "--control-plane-url", cp.url, "--node-id", "edge-9", "--batch-size", "7", "--once", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { ok: boolean; drained: number; status: { backlog: number; pos: number; sink: string } };
    expect(doc).toMatchObject({ ok: true, drained: 50, status: { backlog: 0, pos: 50, sink: "otlp+control-plane" } });
    expect(new Set(rx.arrivals.map((a) => a.seq)).size).toBe(50);
    expect(rx.arrivals.every((a) => a.nodeId === "edge-9")).toBe(true);
    const gen = (await readGeneration(nodeWalFs, dir)).id;
    expect(cp.stored.map((e) => e.event_id)).toContain(`edge-9:wal:${gen}:50`);
    const text = await cli(["telemetry", "drain", "--dir", dir, "--otlp-url", rx.url, "--once"]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^drained 0, backlog 0 \(pos 50 of 50\)$/m);
  });

  it("drain --once with the collector down exits 1, says nothing is lost, and leaves pos alone", async () => {
    const dir = await walDir(5);
    const rx = await startOtlpJsonLogsReceiver();
    cleanups.push(() => rx.close());
    rx.fault = () => ({ status: 503 });
    const r = await cli(["telemetry", "drain", "--dir", dir, "--otlp-url", rx.url, "--once"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: drained 0, backlog 5: otlp: .* HTTP 503/m);
    expect(r.stderr).toMatch(/^hint: nothing is lost/m);
    expect(await readPos(dir)).toEqual({ kind: "missing" });
  });

  it("drain --once names the collector in its errors and logs without credentials or query values", async () => {
    const dir = await walDir(2);
    for (const url of ["http://127.0.0.1:9/?api_key=TOPSECRET", "http://collector:S3cretPassw0rd@127.0.0.1:9/"]) {
      const r = await cli(["telemetry", "drain", "--dir", dir, "--otlp-url", url, "--once"]);
      expect(r.code, url).toBe(1);
      expect(r.stderr, url).toContain("otlp: cannot reach http://127.0.0.1:9/");
      expect(r.stdout + r.stderr, url).not.toMatch(/TOPSECRET|S3cretPassw0rd/);
    }
  });

  it("drain without --once keeps running, prints progress, and stops cleanly on SIGTERM", async () => {
    const dir = await walDir(30);
    const rx = await startOtlpJsonLogsReceiver();
    cleanups.push(() => rx.close());
    const child = spawn(process.execPath, ["--import", "tsx", MAIN, "telemetry", "drain", "--dir", dir, "--otlp-url", rx.url, "--poll-ms", "20", "--json"], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    const exit = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const lines = createInterface({ input: child.stdout });
    let appended = false;
    for await (const line of lines) {
      const doc = JSON.parse(line) as { drained: number; status: { backlog: number; pos: number } };
      if (!appended && doc.status.pos === 30) {
        appended = true;
        const wal = await Wal.open(dir, { log: silent });
        await wal.append({ kind: "error", late: true });
        await wal.close();
      } else if (doc.status.pos === 31) break;
    }
    child.kill("SIGTERM");
    expect(await exit).toBe(0);
    expect(new Set(rx.arrivals.map((a) => a.seq)).size).toBe(31);
  });

  it("drain without a destination is a usage error (exit 2)", async () => {
    const dir = await walDir(1);
    const r = await cli(["telemetry", "drain", "--dir", dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^hint: give --otlp-url/m);
  });
});
