/**
 * `autonomy rollout …` (the built CLI, a child process; `npm run build`
 * first) against a real control plane on loopback (SQLite; the routes' dual
 * dialect runs are test/orchestrator/rollouts-served.test.ts), and the flag
 * parsing that turns `--batches 10%,50%,100% --behaviour deny_rate<=2x …`
 * into a plan.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Rollout } from "../../src/cpapi/index.js";
import { CreateRolloutRequest } from "../../src/cpapi/index.js";
import { planRequestOf } from "../../src/cli/commands/rollout-plan.js";
import type { PlanFlags } from "../../src/cli/commands/rollout-plan.js";
import { openTestCp } from "../helpers/cp-app.js";
import type { TestCp } from "../helpers/cp-app.js";
import { enrollNode, putRelease } from "../helpers/cp-fleet.js";
import { runCli, runJson } from "../helpers/cli.js";

const REL_OLD = "rel-00000000000000c0";
const REL_NEW = "rel-00000000000000c1";
/** The rollback target: REL_OLD's content re-signed above REL_NEW, standby (docs/rollouts.md). */
const REL_BACK = "rel-00000000000000c2";

const flags = (over: Partial<PlanFlags> = {}): PlanFlags => ({
  release: REL_NEW, previous: REL_OLD, selector: ["site=a"], maxConcurrency: "5", batches: "10%,50%,100%", failureBudget: "2", stuckTimeout: "10m",
  behaviour: [], minSamples: "20", window: "1h", lateJoiners: "ignore", ...over,
});

describe("rollout create flags", () => {
  it("turn into a valid plan: cumulative batches, gates after every batch but the last, budget, stuck timeout", () => {
    const req = planRequestOf(flags({ soak: "5m", approval: true, behaviour: ["deny_rate<=2x", "tool_error_rate<=+0.05"] }));
    expect(CreateRolloutRequest.safeParse(req).success).toBe(true);
    expect(req).toMatchObject({ release_id: REL_NEW, previous_release_id: REL_OLD, target: { selector: { site: "a" } }, max_concurrency: 5, failure_budget: { max_failures: 2 }, stuck_timeout_seconds: 600 });
    expect(req.stages.map((s) => [s.stage_id, s.batch, (s.gates ?? []).map((g) => g.kind)])).toEqual([
      ["batch-1", { percent: 10 }, ["time_soak", "manual", "behaviour", "behaviour"]],
      ["batch-2", { percent: 50 }, ["time_soak", "manual", "behaviour", "behaviour"]],
      ["batch-3", { percent: 100 }, []],
    ]);
    expect(req.stages[0]?.gates?.[2]).toEqual({ kind: "behaviour", metric: "deny_rate", comparison: "ratio", threshold: 2, min_samples: 20, window_seconds: 3600 });
    expect(req.stages[0]?.gates?.[3]).toMatchObject({ metric: "tool_error_rate", comparison: "delta", threshold: 0.05 });
    expect(planRequestOf(flags({ selector: [], nodes: "a,b", failureBudget: "10%", previous: "none" }))).toMatchObject({ target: { nodes: ["a", "b"] }, failure_budget: { max_failure_fraction: 0.1 }, previous_release_id: null });
  });

  it("refuse ambiguous or malformed flags naming the flag", () => {
    expect(() => planRequestOf(flags({ nodes: "a" }))).toThrow(/exactly one of --selector and --nodes/);
    expect(() => planRequestOf(flags({ batches: "10%,abc" }))).toThrow(/--batches: "abc"/);
    expect(() => planRequestOf(flags({ behaviour: ["deny_rate<2x"] }))).toThrow(/--behaviour deny_rate<2x/);
    expect(() => planRequestOf(flags({ behaviour: ["deny_rate<=+2x"] }))).toThrow(/--behaviour/);
    expect(() => planRequestOf(flags({ maxConcurrency: "0" }))).toThrow(/--max-concurrency 0/);
  });
});

describe("autonomy rollout (built CLI)", () => {
  let cp: TestCp | undefined;
  afterEach(async () => {
    await cp?.close();
    cp = undefined;
  });

  it("create, status (plain and --json), list, pause, resume, approve, abort; errors keep the server's code and exit non-zero", async () => {
    cp = await openTestCp();
    const url = await cp.app.listen({ host: "127.0.0.1", port: 0 });
    await putRelease(cp.store, REL_OLD, 1);
    await putRelease(cp.store, REL_NEW, 2);
    await putRelease(cp.store, REL_BACK, 3, { standby: true });
    for (let i = 0; i < 4; i++) await enrollNode(cp, `edge-${i}`, { site: "a" });
    const env = { AUTONOMY_SERVER: url, AUTONOMY_TOKEN: cp.owner };
    // A rollback to the lower sequence is refused with the server's code, its field and how to make one.
    const refused = await runJson(["rollout", "create", "--release", REL_NEW, "--previous", REL_OLD, "--selector", "site=a", "--batches", "100%", "--json"], { env });
    expect(refused.code).not.toBe(0);
    expect(JSON.stringify(refused.json)).toContain("ROLLOUT_ROLLBACK_UNREACHABLE");
    expect(refused.stderr).toMatch(/previous_release_id/);
    expect(refused.stderr).toMatch(/autonomy release rollback/);
    const created = await runJson<{ ok: boolean; rollout: Rollout }>(["rollout", "create", "--release", REL_NEW, "--previous", REL_BACK, "--selector", "site=a", "--max-concurrency", "2", "--batches", "1,100%", "--approval", "--failure-budget", "1", "--stuck-timeout", "2m", "--json"], { env });
    expect(created.code, created.stderr).toBe(0);
    const plan = created.json.rollout;
    expect(plan).toMatchObject({ phase: "active", stuck_timeout_seconds: 120, counters: { members: 4 } });
    expect(plan.stages.map((s) => s.stage_id)).toEqual(["batch-1", "batch-2"]);

    const status = await runCli(["rollout", "status", plan.plan_id], { env });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`plan ${plan.plan_id}  ACTIVE  release ${REL_NEW}  rollback target ${REL_BACK}`);
    expect(status.stdout).toMatch(/batch-1 +\[\.+\] 0\/1/);
    expect(status.stdout).toContain("nodes: 4 members  pending 4");

    const list = await runJson<{ rollouts: Array<{ plan_id: string }> }>(["rollout", "list", "--json"], { env });
    expect(list.json.rollouts.map((r) => r.plan_id)).toEqual([plan.plan_id]);

    expect((await runJson<{ rollout: Rollout }>(["rollout", "pause", plan.plan_id, "--reason", "lunch", "--json"], { env })).json.rollout.phase).toBe("paused");
    const again = await runJson(["rollout", "pause", plan.plan_id, "--json"], { env });
    expect(again.code).not.toBe(0);
    expect(again.json).toMatchObject({ ok: false, code: "CP_REQUEST_REJECTED" });
    expect(JSON.stringify(again.json)).toContain("ROLLOUT_ILLEGAL_PHASE");
    expect(again.stderr).toMatch(/paused/);
    expect((await runJson<{ rollout: Rollout }>(["rollout", "resume", plan.plan_id, "--json"], { env })).json.rollout.phase).toBe("active");
    const approved = await runJson<{ approved: boolean }>(["rollout", "approve", plan.plan_id, "--stage", "batch-1", "--json"], { env });
    expect(approved.json).toMatchObject({ ok: true, approved: true });
    expect((await runJson<{ rollout: Rollout }>(["rollout", "abort", plan.plan_id, "--json"], { env })).json.rollout.phase).toBe("cancelled");
    const recovered = await runJson(["rollout", "recover", plan.plan_id, "--strategy", "force", "--json"], { env });
    expect(recovered.code).toBe(2);
  }, 120_000);

  it("status --watch on a pipe prints one line per change and ends when the plan is terminal, exit 1 and the reason when it did not complete", async () => {
    cp = await openTestCp();
    const url = await cp.app.listen({ host: "127.0.0.1", port: 0 });
    await putRelease(cp.store, REL_OLD, 1);
    await putRelease(cp.store, REL_NEW, 2);
    await putRelease(cp.store, REL_BACK, 3, { standby: true });
    await enrollNode(cp, "edge-0", { site: "a" });
    const env = { AUTONOMY_SERVER: url, AUTONOMY_TOKEN: cp.owner };
    const plan = (await runJson<{ rollout: Rollout }>(["rollout", "create", "--release", REL_NEW, "--previous", REL_BACK, "--nodes", "edge-0", "--batches", "100%", "--json"], { env })).json.rollout;
    const watching = runCli(["rollout", "status", plan.plan_id, "--watch", "--interval", "100ms"], { env, timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 1500));
    await runCli(["rollout", "abort", plan.plan_id], { env });
    const w = await watching;
    expect(w.code, w.stderr).toBe(1);
    const lines = w.stdout.trim().split("\n");
    expect(lines[0]).toMatch(new RegExp(`^${plan.plan_id} active stage=all|^${plan.plan_id} active`));
    expect(lines.at(-1)).toMatch(/ cancelled .* reason="[^"]+"$/);
  }, 60_000);
});
