/**
 * A running runtime (real HTTP) across policy changes made by `policy load`:
 * a broken bundle changes nothing it enforces; a new good bundle is enforced
 * without a restart; with no policy every call is refused.
 */
import { describe, expect, it, afterEach } from "vitest";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildBundle } from "../../src/policy/index.js";
import { loadPolicy, readNodeState } from "../../src/node/index.js";
import { DEFAULT_RUNTIME_CONFIG, MemorySink, startRuntime } from "../../src/runtime/index.js";
import type { RunningRuntime } from "../../src/runtime/index.js";
import { policyDir } from "../helpers/release.js";
import { bearerFor } from "../helpers/tool-server.js";
import { uncompiledBundle } from "../helpers/policies.js";

let bearer: Record<string, string> = {};

async function call(url: string, kind: string, params: Record<string, unknown>): Promise<{ status: number; body: { decision: string; policy_ref: string } }> {
  const res = await fetch(`${url}/v1/tool`, { method: "POST", headers: { "content-type": "application/json", ...bearer }, body: JSON.stringify({ kind, params }) });
  return { status: res.status, body: (await res.json()) as { decision: string; policy_ref: string } };
}

async function until(f: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("runtime over HTTP across policy loads", () => {
  let rt: RunningRuntime | undefined;
  afterEach(async () => {
    await rt?.close();
    rt = undefined;
  });

  it("refuses everything with no policy, enforces a loaded bundle without restart, and ignores a broken one", async () => {
    const stateRoot = join(await mkdtemp(join(tmpdir(), "hot-")), "node");
    bearer = await bearerFor(stateRoot, "a");
    rt = await startRuntime({ stateRoot, config: { ...DEFAULT_RUNTIME_CONFIG, agentId: "a", node: {}, allowedDomains: [], upstreams: [], telemetry: {} }, listen: { host: "127.0.0.1", port: 0 }, sink: new MemorySink(), pollMs: 20 });
    const url = rt.url ?? "";
    expect(await call(url, "tool.echo", { text: "x" })).toMatchObject({ status: 403, body: { decision: "deny", policy_ref: "none" } });

    const good = await buildBundle(await policyDir({ "echo.cedar": 'permit(principal, action == Action::"tool:tool.echo", resource);' }), { name: "good", version: "1.0.0", createdAt: new Date(0) });
    await loadPolicy(stateRoot, good.bytes);
    await until(async () => (await call(url, "tool.echo", { text: "x" })).status === 200);

    const broken = uncompiledBundle({ "bad.cedar": "forbid(principal, action, resource" }, { name: "broken", version: "2.0.0" });
    const before = await readNodeState(stateRoot);
    await expect(loadPolicy(stateRoot, broken.bytes)).rejects.toMatchObject({ code: "POLICY_COMPILE_FAILED" });
    expect(await readNodeState(stateRoot)).toEqual(before);
    await new Promise((r) => setTimeout(r, 100));
    const still = await call(url, "tool.echo", { text: "x" });
    expect(still.status).toBe(200);
    expect(still.body.policy_ref).toContain("good@1.0.0");

    const deny = await buildBundle(await policyDir({ "all.cedar": "permit(principal, action, resource);", "no-echo.cedar": 'forbid(principal, action == Action::"tool:tool.echo", resource);' }), { name: "deny-echo", version: "3.0.0", createdAt: new Date(0) });
    await loadPolicy(stateRoot, deny.bytes);
    await until(async () => (await call(url, "tool.echo", { text: "x" })).status === 403);
    const state = await readNodeState(stateRoot);
    expect(state.lkg?.name).toBe("good");
  });
});
