import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { lstat, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EdgeError } from "../errors.js";
import { createControlServer } from "./control-server.js";
import { listenControlSocket } from "./control-socket.js";
import { ControlDouble, SEG } from "../../../test/helpers/relay-control-double.js";
import { ControlClient } from "./ctl-client.js";

describe("edged control socket", () => {
  let dir: string;
  let control: ControlDouble;
  let close: () => Promise<void>;
  let client: ControlClient;
  let sock: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "ctl-"));
    sock = join(dir, "run", "ctl.sock");
    control = new ControlDouble();
    const app = await createControlServer({ control, maxSegmentBytes: 1024 });
    const unlink = await listenControlSocket(app, sock);
    close = async () => {
      await app.close();
      await unlink();
    };
    client = new ControlClient({ socketPath: sock });
  });
  afterEach(async () => {
    await close();
    await rm(dir, { recursive: true, force: true });
  });

  it("serves the socket with mode 0600 in a directory it created with mode 0700", async () => {
    expect((await stat(sock)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, "run"))).mode & 0o777).toBe(0o700);
  });

  it("answers status, bandwidth changes (applied=true), dead-letter operations and enqueues as JSON", async () => {
    expect((await client.status()).queue.deadletter).toBe(1);
    const applied = await client.setBandwidth({ bytes_per_second: 2048 });
    expect(applied).toEqual({ applied: true, bandwidth: { bytes_per_second: 2048, daily_quota_bytes: 0, quota_reset_utc: "00:00" }, persisted: false });
    expect(await client.deadletterList(10)).toHaveLength(1);
    expect((await client.deadletterInspect(SEG, "edge-b")).state).toBe("deadletter");
    const dry = await client.deadletterPurge({ peer_id: "edge-b", force: false });
    expect(dry).toMatchObject({ dry_run: true, purged: 0 });
    expect(control.deadletters).toHaveLength(1);
    expect(await client.deadletterRetry(SEG, "edge-b")).toEqual({ segment_id: SEG, peer_id: "edge-b", state: "scheduled" });
    const info = await client.enqueue(new TextEncoder().encode("hello"), "data");
    expect(info).toMatchObject({ size: 5, kind: "data", id: createHash("sha256").update("hello").digest("hex") });
    expect(Buffer.from(control.enqueued[0]?.bytes ?? []).toString()).toBe("hello");
  });

  it("turns a domain error into problem details with its code (DEADLETTER_NOT_FOUND, 404)", async () => {
    const err = await client.deadletterInspect("b".repeat(64), "edge-b").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EdgeError);
    expect((err as EdgeError).code).toBe("DEADLETTER_NOT_FOUND");
    expect((err as EdgeError).details.status).toBe(404);
  });

  it("refuses invalid requests before they reach the relay (bad bandwidth, bad ids, oversized segment)", async () => {
    const bad = await client.setBandwidth({ bytes_per_second: -1 }).catch((e: unknown) => e);
    expect((bad as EdgeError).details.remote_code).toBe("REQUEST_INVALID");
    const badTime = await client.setBandwidth({ quota_reset_utc: "25:00" }).catch((e: unknown) => e);
    expect((badTime as EdgeError).details.remote_code).toBe("REQUEST_INVALID");
    expect(control.bandwidth.bytes_per_second).toBe(0);
    const badId = await client.deadletterRetry("../../etc", "edge-b").catch((e: unknown) => e);
    expect((badId as EdgeError).details.status).toBe(400);
    const big = await client.enqueue(new Uint8Array(2048)).catch((e: unknown) => e);
    expect((big as EdgeError).details.remote_code).toBe("REQUEST_TOO_LARGE");
    expect(control.enqueued).toHaveLength(0);
  });

  it("a second server on a live socket is CONTROL_SOCKET_IN_USE", async () => {
    const app2 = await createControlServer({ control, maxSegmentBytes: 1024 });
    await expect(listenControlSocket(app2, sock)).rejects.toMatchObject({ code: "CONTROL_SOCKET_IN_USE" });
    await app2.close();
    expect((await client.status()).node_id).toBe("edge-a");
  });

  it("replaces the stale socket file of a killed edged (nobody answers on it)", async () => {
    const stale = join(dir, "stale.sock");
    // A process that binds the socket and dies by SIGKILL leaves the file behind, with no listener.
    const r = spawnSync(process.execPath, ["-e", `require("node:net").createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, "SIGKILL"))`]);
    expect(r.signal).toBe("SIGKILL");
    expect((await lstat(stale)).isSocket()).toBe(true);
    const app2 = await createControlServer({ control, maxSegmentBytes: 1024 });
    const unlink = await listenControlSocket(app2, stale);
    expect((await new ControlClient({ socketPath: stale }).status()).node_id).toBe("edge-a");
    await app2.close();
    await unlink();
  });

  it("refuses to replace a file that is not a socket", async () => {
    const f = join(dir, "plain");
    await writeFile(f, "x");
    const app2 = await createControlServer({ control, maxSegmentBytes: 1024 });
    await expect(listenControlSocket(app2, f)).rejects.toMatchObject({ code: "CONTROL_SOCKET_IN_USE" });
    await app2.close();
  });

  it("a missing daemon is CONTROL_SOCKET_UNAVAILABLE naming the socket", async () => {
    const c = new ControlClient({ socketPath: join(dir, "nobody.sock") });
    const err = await c.status().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "CONTROL_SOCKET_UNAVAILABLE" });
    expect((err as Error).message).toContain("nobody.sock");
  });
});
