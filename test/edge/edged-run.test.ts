// `edged run` as a real child process (test/helpers/edged-child.ts: the real command tree with recording relay
// parts): it serves the control socket, SIGHUP reloads edge.toml without restart, SIGTERM stops it with exit 0
// and removes the socket; a second edged on the same state root is refused.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ControlClient } from "../../src/edge/index.js";
import type { EdgeConfig } from "../../src/edge/index.js";
import { REPO_ROOT, runProcess } from "../helpers/cli.js";
import { testEdgeConfig } from "../helpers/relay-parts-double.js";

const CHILD = join(REPO_ROOT, "test/helpers/edged-child.ts");

async function until<T>(f: () => Promise<T>, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if ((v !== undefined && ok(v)) || Date.now() > end) {
      if (v === undefined) throw new Error("condition not reached");
      return v;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((r) => child.once("exit", (code, signal) => r({ code, signal })));
}

describe("edged run (child process)", () => {
  let dir: string;
  let cfgPath: string;
  let sock: string;
  let config: EdgeConfig;
  let child: ChildProcess | undefined;
  let stderr = "";

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "edged-run-"));
    cfgPath = join(dir, "edge.json");
    sock = join(dir, "ctl.sock");
    config = testEdgeConfig(cfgPath, join(dir, "state"));
    await writeFile(cfgPath, JSON.stringify(config));
  });
  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    child = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("serves the control socket; SIGHUP applies a new [bandwidth] without restart; SIGTERM exits 0 and removes the socket", async () => {
    child = spawn(process.execPath, ["--import", "tsx", CHILD, "run", "--config", cfgPath, "--control-socket", sock], { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = exitOf(child);
    const ctl = new ControlClient({ socketPath: sock });
    const first = await until(() => ctl.status(), (s) => s.node_id === "edge-a");
    expect(first.bandwidth.bytes_per_second).toBe(0);
    await writeFile(cfgPath, JSON.stringify({ ...config, bandwidth: { ...config.bandwidth, bytes_per_second: 9000 } }));
    child.kill("SIGHUP");
    const after = await until(() => ctl.status(), (s) => s.bandwidth.bytes_per_second === 9000);
    expect(after.bandwidth.bytes_per_second).toBe(9000);
    // A second edged on the same state root is refused while the first runs.
    const second = await runProcess(process.execPath, ["--import", "tsx", CHILD, "run", "--config", cfgPath, "--control-socket", join(dir, "b.sock"), "--json"]);
    expect(second.code).toBe(1);
    expect(JSON.parse(second.stdout)).toMatchObject({ code: "DAEMON_ALREADY_RUNNING" });
    child.kill("SIGTERM");
    expect(await exited, stderr).toEqual({ code: 0, signal: null });
    expect(existsSync(sock)).toBe(false);
    // One JSON log line per lifecycle event.
    const events = stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => (JSON.parse(l) as { event?: string }).event);
    expect(events).toEqual(expect.arrayContaining(["edged_starting", "control_socket_listening", "relay_started", "edged_started", "config_reloaded", "edged_stopping", "relay_stopped", "edged_stopped"]));
  }, 60_000);

  it("without --config is a usage error (exit 2)", async () => {
    const r = await runProcess(process.execPath, ["--import", "tsx", CHILD, "run", "--control-socket", sock]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--config");
  });

  it("SIGTERM during a start-up that hangs stops edged (exit 1, STARTUP_INTERRUPTED), it does not hang", async () => {
    stderr = "";
    child = spawn(process.execPath, ["--import", "tsx", CHILD, "run", "--config", cfgPath, "--control-socket", sock], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, EDGED_CHILD_HANG_START: "1" } });
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = exitOf(child);
    await until(() => Promise.resolve(stderr), (s) => s.includes("edged_starting"));
    child.kill("SIGTERM");
    expect(await exited, stderr).toEqual({ code: 1, signal: null });
    expect(stderr).toContain("signal_during_startup");
    expect(stderr).toMatch(/error: SIGTERM during start-up/);
  }, 60_000);

  it("no untagged Fastify 'Server listening at' line on start: edged's own control_socket_listening event says it", async () => {
    stderr = "";
    child = spawn(process.execPath, ["--import", "tsx", CHILD, "run", "--config", cfgPath, "--control-socket", sock], { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = exitOf(child);
    await until(() => Promise.resolve(stderr), (s) => s.includes("edged_started"));
    child.kill("SIGTERM");
    expect(await exited, stderr).toEqual({ code: 0, signal: null });
    expect(stderr).toContain("control_socket_listening");
    expect(stderr).not.toContain("Server listening");
  }, 60_000);
});
