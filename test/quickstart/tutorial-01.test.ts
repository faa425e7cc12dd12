/**
 * Tutorial 01 (`npm start`) through the built binary on an image layout: every
 * step must hold, and the node drills of issue 9 are among them: mix-and-match
 * and rollback replay refused (exit 4), the rollback done right (a new, higher
 * sequence) accepted.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeRun, runJson } from "../helpers/cli.js";

let root = "";
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "tutorial-01-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

interface Result {
  ok: boolean;
  steps: { step: string; ok: boolean; detail: string }[];
}

describe("autonomy quickstart (tutorial 01)", () => {
  it("publishes, refuses every tamper drill (mix-and-match and rollback replay included), enforces, and accepts a rollback done as a new release", async () => {
    const r = await runJson<Result>(["quickstart", "--tutorial", "01", "--dir", join(root, "t01")], { timeoutMs: 120_000 });
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.json.ok).toBe(true);
    expect(r.json.steps.filter((s) => !s.ok)).toEqual([]);
    const step = (prefix: string) => r.json.steps.find((s) => s.step.startsWith(prefix));
    expect(step("rollback drill")?.detail).toContain("ACTIVATION_ROLLBACK_REFUSED (exit 4)");
    expect(step("mix-and-match drill")?.detail).toMatch(/refused as it should: [A-Z_]+ \(exit 4\)/);
    expect(step("rollback as a new release")?.detail).toContain("re-signed as sequence 3");
    expect(step("activate rollback")?.detail).toContain("sequence 3 accepted as an upgrade");
  }, 120_000);
});
