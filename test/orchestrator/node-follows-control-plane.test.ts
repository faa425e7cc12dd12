/**
 * The seam between the two sides, with nothing faked: a node runtime
 * (`startRuntime` with a control plane) enrolls with the REAL control plane
 * (buildApp on SQLite or PostgreSQL, on a loopback port), finds a release
 * published through POST /v1/releases, verifies and activates it itself, and
 * the control plane shows the node's acks and heartbeat; a second release
 * published later is taken without a restart.
 */
import { afterEach, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initStateRoot, readNodeState, setTrustRoot } from "../../src/node/index.js";
import { DEFAULT_RUNTIME_CONFIG, startRuntime } from "../../src/runtime/index.js";
import type { RunningRuntime } from "../../src/runtime/index.js";
import { openRepository } from "../../src/oci/index.js";
import { seededRng } from "../../src/lib/index.js";
import { bearer, openTestCp } from "../helpers/cp-app.js";
import type { TestCp } from "../helpers/cp-app.js";
import { describeDialects } from "../helpers/databases.js";
import { makeRelease, policyDir, testKeys } from "../helpers/release.js";
import type { MadeRelease } from "../helpers/release.js";

async function until(f: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

describeDialects("a node follows the real control plane", (db) => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it("enrolls, activates what was published after verifying it, reports acks and heartbeats, and takes the next release", async () => {
    const dir = await mkdtemp(join(tmpdir(), "node-cp-"));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    // The test clock set to now: the node signs and checks statements against real time, the control plane stamps near it.
    const cp: TestCp = await openTestCp({ location: await db.fresh() });
    cleanup.push(() => cp.close());
    cp.clock.set(Date.now());
    const url = await cp.app.listen({ host: "127.0.0.1", port: 0 });

    const keys = testKeys();
    const stateRoot = join(dir, "node");
    await initStateRoot(stateRoot);
    await setTrustRoot(stateRoot, { keys: [keys.publicPem], repository: `oci:${dir}/reg` });
    const made = async (seq: number, cedar: string): Promise<MadeRelease> =>
      makeRelease({ ref: `oci:${dir}/reg:v${seq}`, keys, sequence: seq, agentText: `a${seq}`, repository: `oci:${dir}/reg`, policies: await policyDir({ "p.cedar": cedar }) });
    const publish = async (rel: MadeRelease): Promise<string> => {
      const envelope: unknown = JSON.parse(Buffer.from(await openRepository(rel.ref).getBlob(rel.signed.statement.envelope)).toString("utf8"));
      const res = await cp.app.inject({ method: "POST", url: "/v1/releases", headers: bearer(cp.owner), payload: { statement: envelope, image: `oci:${dir}/reg:v${rel.signed.statement.predicate.sequence}`, channel: "stable" } });
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ release_id: string }>().release_id;
    };
    const v1 = await publish(await made(1, 'permit(principal, action == Action::"tool:tool.echo", resource);'));
    const second = await made(2, 'forbid(principal, action == Action::"tool:tool.echo", resource);');
    const et = await cp.app.inject({ method: "POST", url: "/v1/enrollment-tokens", headers: bearer(cp.owner), payload: { node_id: "edge-7", labels: { ring: "canary" } } });

    const rt: RunningRuntime = await startRuntime({
      stateRoot,
      config: { ...DEFAULT_RUNTIME_CONFIG, agentId: "a", node: {}, allowedDomains: [], upstreams: [], telemetry: {} },
      pollMs: 20,
      controlPlane: { server: url, enrollToken: et.json<{ token: string }>().token, nodeId: "edge-7", pollIntervalMs: 100, timeoutMs: 2000, random: seededRng(1) },
    });
    cleanup.push(() => rt.close());
    expect(rt.controlPlane).toMatchObject({ nodeId: "edge-7", enrolled: true });

    const node = async (): Promise<{ release_id: string | null; labels: Record<string, string>; last_ack: { release_id: string; phase: string } | null }> =>
      (await cp.app.inject({ url: "/v1/nodes/edge-7", headers: bearer(cp.owner) })).json();
    await until(async () => (await node()).last_ack?.phase === "activated");
    expect((await node()).last_ack).toMatchObject({ release_id: v1, phase: "activated" });
    expect((await readNodeState(stateRoot)).activation?.sequence).toBe(1);
    await until(async () => (await node()).release_id === v1);
    expect((await node()).labels).toEqual({ ring: "canary" });

    const v2 = await publish(second);
    await until(async () => (await node()).last_ack?.release_id === v2 && (await node()).last_ack?.phase === "activated");
    expect((await readNodeState(stateRoot)).activation?.sequence).toBe(2);
    await until(async () => (await node()).release_id === v2);
  }, 120_000);
});
