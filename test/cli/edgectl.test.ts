// edgectl as a child process (`node --import tsx src/cli/edgectl-main.ts`) against a control socket served
// in this process over a RelayControl double: argv → request → text / --json output and exit codes.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createControlServer, listenControlSocket } from "../../src/edge/index.js";
import { REPO_ROOT, runProcess } from "../helpers/cli.js";
import type { RunResult } from "../helpers/cli.js";
import { ControlDouble, SEG } from "../helpers/relay-control-double.js";

const MAIN = join(REPO_ROOT, "src/cli/edgectl-main.ts");

describe("edgectl", () => {
  let dir: string;
  let sock: string;
  let control: ControlDouble;
  let close: () => Promise<void>;
  const edgectl = (...args: string[]): Promise<RunResult> => runProcess(process.execPath, ["--import", "tsx", MAIN, "--socket", sock, ...args]);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "edgectl-"));
    sock = join(dir, "ctl.sock");
    control = new ControlDouble();
    const app = await createControlServer({ control, maxSegmentBytes: 1024 });
    const unlink = await listenControlSocket(app, sock);
    close = async () => {
      await app.close();
      await unlink();
    };
  });
  afterAll(async () => {
    await close();
    await rm(dir, { recursive: true, force: true });
  });

  it("relay status prints the queue, bandwidth and refused peers; --output json and --json print the document", async () => {
    const text = await edgectl("relay", "status");
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain("relay: enabled");
    expect(text.stdout).toMatch(/queue: scheduled 0 {2}inflight 0 {2}acked 0 {2}failed 0 {2}deadletter 1 {2}total 1/);
    expect(text.stdout).toContain("throttled 0  quota drops 0");
    expect(text.stdout).toContain("refused peers: none");
    // The boot epoch and the last OS reconstruction (what an operator checks after an OS replacement).
    expect(text.stdout).toContain(`boot: epoch 2  OS fingerprint blake3:${"c".repeat(64)}`);
    expect(text.stdout).toContain("last reconstruction: completed at 2026-01-01T00:00:00Z, to epoch 2");
    for (const flag of [["--output", "json"], ["--json"]]) {
      const r = await edgectl("relay", "status", ...flag);
      expect(r.code, r.stderr).toBe(0);
      const doc = JSON.parse(r.stdout) as { version: number; queue: { deadletter: number }; boot: { boot_epoch: number; last_reconstruction: { outcome: string } }; queried_at: string };
      expect(doc.version).toBe(1);
      expect(doc.boot).toMatchObject({ boot_epoch: 2, last_reconstruction: { outcome: "completed" } });
      expect(doc.queue.deadletter).toBe(1);
      expect(doc.queried_at).toBeTypeOf("string");
    }
  });

  it("relay config set-bandwidth applies at once and prints applied=true", async () => {
    const r = await edgectl("relay", "config", "set-bandwidth", "--bytes-per-second", "4096", "--daily-quota-bytes", "100000");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^applied=true/);
    expect(control.bandwidth).toMatchObject({ bytes_per_second: 4096, daily_quota_bytes: 100000 });
    const get = await edgectl("relay", "config", "get", "--json");
    expect(JSON.parse(get.stdout)).toMatchObject({ bandwidth: { bytes_per_second: 4096 } });
    const none = await edgectl("relay", "config", "set-bandwidth");
    expect(none.code).toBe(2);
    const bad = await edgectl("relay", "config", "set-bandwidth", "--quota-reset-utc", "24:00");
    expect(bad.code).toBe(2);
  });

  it("relay deadletter purge is a dry run without --force; list, inspect and retry reach the relay", async () => {
    const dry = await edgectl("relay", "deadletter", "purge", "--peer-id", "edge-b");
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain("dry run: 1 dead letter(s) would be purged");
    expect(control.deadletters).toHaveLength(1);
    const list = await edgectl("relay", "deadletter", "list", "--json");
    expect((JSON.parse(list.stdout) as { deadletters: unknown[] }).deadletters).toHaveLength(1);
    const inspect = await edgectl("relay", "deadletter", "inspect", SEG, "edge-b");
    expect(inspect.stdout).toContain("RELAY_PEER_UNREACHABLE");
    const missing = await edgectl("relay", "deadletter", "inspect", "b".repeat(64), "edge-b", "--json");
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stdout)).toMatchObject({ ok: false, code: "DEADLETTER_NOT_FOUND" });
    const retry = await edgectl("relay", "deadletter", "retry", SEG, "edge-b");
    expect(retry.stdout).toContain("scheduled");
    expect(control.deadletters).toHaveLength(0);
  });

  it("relay send enqueues the file's bytes as a segment", async () => {
    const f = join(dir, "payload.bin");
    await writeFile(f, "relay me");
    const r = await edgectl("relay", "send", f, "--json");
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ size: 8, kind: "data", created: true });
    expect(Buffer.from(control.enqueued.at(-1)?.bytes ?? []).toString()).toBe("relay me");
  });

  it("a missing daemon is CONTROL_SOCKET_UNAVAILABLE with the hint, exit 1", async () => {
    const r = await runProcess(process.execPath, ["--import", "tsx", MAIN, "relay", "status", "--socket", join(dir, "none.sock")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("none.sock");
    expect(r.stderr).toContain("hint: start edged");
    const j = await runProcess(process.execPath, ["--import", "tsx", MAIN, "--socket", join(dir, "none.sock"), "relay", "status", "--json"]);
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: false, code: "CONTROL_SOCKET_UNAVAILABLE" });
  });
});
