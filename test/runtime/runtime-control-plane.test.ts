/**
 * `runtime start --server`: a running runtime (real HTTP tool server, its own
 * WAL) that follows a control plane on loopback. It enrolls, activates what
 * the control plane publishes after verifying it itself, enforces the new
 * policy without a restart, keeps enforcing it while the control plane is
 * down, and picks up the next release once it is back.
 */
import { afterEach, describe, expect, it } from "vitest";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initStateRoot, readControlPlane, readNodeState, setTrustRoot, writeControlPlane } from "../../src/node/index.js";
import { DEFAULT_RUNTIME_CONFIG, startRuntime } from "../../src/runtime/index.js";
import type { RunningRuntime } from "../../src/runtime/index.js";
import { seededRng } from "../../src/lib/index.js";
import { makeRelease, policyDir, testKeys } from "../helpers/release.js";
import { releaseRecord, startCpNodeServer } from "../helpers/cp-node-server.js";
import type { CpNodeServer } from "../helpers/cp-node-server.js";
import type { Release } from "../../src/cpapi/index.js";
import { bearerFor } from "../helpers/tool-server.js";
import { runJson } from "../helpers/cli.js";

async function until(f: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe("runtime start --server", () => {
  let rt: RunningRuntime | undefined;
  let cp: CpNodeServer | undefined;
  afterEach(async () => {
    await rt?.close();
    rt = undefined;
    await cp?.close();
    cp = undefined;
  });

  it("follows the control plane: activates a published release, keeps enforcing it while the control plane is down, and takes the next one when it is back", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rt-cp-"));
    const stateRoot = join(dir, "node");
    const keys = testKeys();
    await initStateRoot(stateRoot);
    await setTrustRoot(stateRoot, { keys: [keys.publicPem], repository: `oci:${dir}/reg` });
    const bearer = await bearerFor(stateRoot, "a");
    cp = await startCpNodeServer();
    cp.enrollTokens.set("t1", {});
    const prepare = async (seq: number, cedar: string): Promise<Release> => {
      const rel = await makeRelease({ ref: `oci:${dir}/reg:v${seq}`, keys, sequence: seq, agentText: `a${seq}`, repository: `oci:${dir}/reg`, policies: await policyDir({ "p.cedar": cedar }) });
      return releaseRecord(rel);
    };
    const publish = (r: Release): string => {
      cp?.releases.set(r.release_id, r);
      return r.release_id;
    };
    const echo = async (): Promise<number> => (await fetch(`${rt?.url ?? ""}/v1/tool`, { method: "POST", headers: { "content-type": "application/json", ...bearer }, body: JSON.stringify({ kind: "tool.echo", params: { text: "x" } }) })).status;

    const v1 = publish(await prepare(1, 'permit(principal, action == Action::"tool:tool.echo", resource);'));
    // Signed now: while the control plane is down the test only waits for the poller (its backoff grows meanwhile).
    const second = await prepare(2, 'forbid(principal, action == Action::"tool:tool.echo", resource);');
    rt = await startRuntime({
      stateRoot, config: { ...DEFAULT_RUNTIME_CONFIG, agentId: "a", node: {}, allowedDomains: [], upstreams: [], telemetry: {} }, listen: { host: "127.0.0.1", port: 0 }, pollMs: 20,
      controlPlane: { server: cp.url, enrollToken: "t1", nodeId: "edge-7", pollIntervalMs: 100, timeoutMs: 500, random: seededRng(1) },
    });
    expect(rt.controlPlane).toMatchObject({ nodeId: "edge-7", enrolled: true });
    await until(async () => (await echo()) === 200);
    // The live policy may pick the commit up before the last ack is sent.
    await until(() => cp?.acks.some((a) => a.body.phase === "activated") ?? false);
    expect(cp.acks.filter((a) => a.body.release_id === v1).map((a) => a.body.phase)).toEqual(["polled", "candidate_detected", "verify_started", "verify_passed", "activation_started", "activated"]);
    await until(() => cp?.heartbeats.some((h) => h.body.release_id === v1) ?? false);
    // /v1/status shows the poller, never the node credential.
    const status = await (await fetch(`${rt.url ?? ""}/v1/status`, { headers: bearer })).text();
    expect(JSON.parse(status)).toMatchObject({ telemetry: { control_plane: { node_id: "edge-7", last_outcome: expect.any(String) as string, rejected: [] } } });
    const credential = (await readControlPlane(stateRoot))?.credential ?? "missing";
    expect(status).not.toContain(credential);

    // The control plane goes away: the node keeps its policy and keeps polling (with backoff).
    const port = Number(new URL(cp.url).port);
    const old = cp;
    await cp.close();
    const poller = rt.controlPlane?.poller;
    await until(() => (poller?.status().consecutive_failures ?? 0) >= 2);
    expect(await echo()).toBe(200);
    expect((await readNodeState(stateRoot)).activation?.sequence).toBe(1);

    // Back, with a release that forbids echo: the node takes it without a restart.
    cp = await startCpNodeServer({ from: old, port });
    const v2 = publish(second);
    // The poller is asleep in its backoff (at most 4 s after the second failure, more if the machine is slow).
    await until(async () => (await echo()) === 403, 60_000);
    expect((await readControlPlane(stateRoot))?.activated_release?.release_id).toBe(v2);
    expect(poller?.status()).toMatchObject({ consecutive_failures: 0, rejected: [], retrying: null });
  });

  it("a later start reuses the stored enrollment and starts while the control plane is down", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rt-cp-"));
    const stateRoot = join(dir, "node");
    await initStateRoot(stateRoot);
    cp = await startCpNodeServer();
    cp.enrollTokens.set("t1", {});
    const config = { ...DEFAULT_RUNTIME_CONFIG, agentId: "a", node: {}, allowedDomains: [], upstreams: [], telemetry: {} };
    rt = await startRuntime({ stateRoot, config, controlPlane: { server: cp.url, enrollToken: "t1", nodeId: "edge-8", pollIntervalMs: 100, timeoutMs: 300 } });
    await rt.close();
    const url = cp.url;
    await cp.close();
    cp = undefined;
    rt = await startRuntime({ stateRoot, config, controlPlane: { server: url, pollIntervalMs: 100, timeoutMs: 300 } });
    expect(rt.controlPlane).toMatchObject({ nodeId: "edge-8", enrolled: false });
    await until(() => (rt?.controlPlane?.poller.status().consecutive_failures ?? 0) >= 1);
  });

  it("the CLI: a wrong enrollment token is one error line with a hint (exit 1), and nothing is stored", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rt-cp-"));
    const stateRoot = join(dir, "node");
    cp = await startCpNodeServer();
    const r = await runJson(["runtime", "start", "--state-root", stateRoot, "--server", cp.url, "--enroll-token", "nope", "--node-id", "edge-9", "--no-http"]);
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ ok: false, code: "NODE_ENROLLMENT_REFUSED" });
    expect(String(r.json.hint)).toMatch(/single-use/);
    expect(r.stdout + r.stderr).not.toContain("nope");
    expect(await readControlPlane(stateRoot)).toBeUndefined();
  });

  it("attack clear-text credentials (exporter): `[telemetry] control_plane_url` naming the enrolled server over plain http off loopback does not send it the node credential: the start is refused (CP_PLAIN_HTTP_REFUSED)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rt-cp-"));
    const stateRoot = join(dir, "node");
    await initStateRoot(stateRoot);
    const far = "http://192.0.2.10:8888";
    await writeControlPlane(stateRoot, { version: 1, server: far, node_id: "edge-1", credential: "aon_secret", enrolled_at: new Date().toISOString() });
    const config = { ...DEFAULT_RUNTIME_CONFIG, agentId: "a", node: {}, allowedDomains: [], upstreams: [], telemetry: { controlPlaneUrl: far } };
    await expect(startRuntime({ stateRoot, config })).rejects.toMatchObject({ code: "CP_PLAIN_HTTP_REFUSED" });
  });

  it("attack clear-text credentials (CLI): `runtime start --server http://<not loopback>` is refused up front (exit 2, CP_PLAIN_HTTP_REFUSED, token never shown); --server-plain-http lets it try", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rt-cp-"));
    const stateRoot = join(dir, "node");
    const args = ["runtime", "start", "--state-root", stateRoot, "--server", "http://192.0.2.10:8888", "--enroll-token", "aoe-secret-token", "--node-id", "edge-9", "--no-http"];
    const r = await runJson(args);
    expect(r.code).toBe(2);
    expect(r.json).toMatchObject({ ok: false, code: "CP_PLAIN_HTTP_REFUSED" });
    expect(String(r.json.hint)).toMatch(/--server-plain-http/);
    expect(r.stdout + r.stderr).not.toContain("aoe-secret-token");
    // With the explicit flag it goes to the network: http://0.0.0.0 is not a loopback name (refused without the flag)
    // but reaches this machine's loopback server, which refuses the token (exit 1).
    cp = await startCpNodeServer();
    const zero = cp.url.replace("127.0.0.1", "0.0.0.0");
    const noFlag = await runJson([...args.slice(0, 5), zero, ...args.slice(6)]);
    expect(noFlag.json).toMatchObject({ ok: false, code: "CP_PLAIN_HTTP_REFUSED" });
    const allowed = await runJson([...args.slice(0, 5), zero, ...args.slice(6), "--server-plain-http"]);
    expect(allowed.code).toBe(1);
    expect(allowed.json).toMatchObject({ ok: false, code: "NODE_ENROLLMENT_REFUSED" });
    expect(await readControlPlane(stateRoot)).toBeUndefined();
  });
});
