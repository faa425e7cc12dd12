/**
 * Tutorial 03 through the built binary: a real runtime child SIGKILLed under
 * concurrent load, restarted, and its WAL drained after a collector outage.
 * Every step must hold (the tutorial checks each one itself and says why).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeRun, runJson } from "../helpers/cli.js";

let root = "";
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "tutorial-03-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

interface Result {
  ok: boolean;
  answered: number;
  committed: number;
  delivered: number;
  steps: { step: string; ok: boolean; detail: string }[];
}

describe("autonomy quickstart --tutorial 03", () => {
  it("kill mid-load, restart, drain after an outage: no answered call's decision lost, highest priority first", async () => {
    const r = await runJson<Result>(["quickstart", "--tutorial", "03", "--dir", join(root, "t03")], { timeoutMs: 120_000 });
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.json.steps.filter((s) => !s.ok)).toEqual([]);
    expect(r.json.steps.map((s) => s.step)).toEqual(["node", "token", "runtime", "SIGKILL", "WAL after the crash", "restart", "no event loss", "collector down", "collector back", "priority order"]);
    expect(r.json.answered).toBeGreaterThanOrEqual(300);
    expect(r.json.delivered).toBe(r.json.committed);
  }, 120_000);

  it("refuses an unknown tutorial with a usage error", async () => {
    const r = await runJson(["quickstart", "--tutorial", "07", "--dir", join(root, "t07")]);
    expect(r.code).toBe(2);
    expect(r.json).toMatchObject({ ok: false, code: "USAGE" });
  });
});
