/**
 * Tutorial 02 for real: `autonomy serve` and three `autonomy runtime start
 * --server` child processes on loopback, a signed release the nodes verify and
 * activate, a second one stopped by its behaviour gate and rolled back. The
 * default `autonomy quickstart` (what `npm start` runs) plays 01, then 02.
 * Then the proof that its checks bite: a node that never activates, and a plan
 * without its gate, each make it FAIL; Ctrl-C stops it and its children.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runTutorial02 } from "../../src/quickstart/index.js";
import type { Tutorial02Result } from "../../src/quickstart/index.js";
import { AUTONOMY_BIN, REPO_ROOT, describeRun, runJson } from "../helpers/cli.js";

const EXAMPLES = join(REPO_ROOT, "examples");

let root = "";
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "tutorial-02-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** True while a process with this pid exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const failed = (r: Tutorial02Result): { step: string; ok: boolean; detail: string }[] => r.steps.filter((s) => !s.ok);

describe("autonomy quickstart: tutorial 01, then tutorial 02", () => {
  it("converges three real nodes on release 1 with verifiable lifecycle events, then a behaviour gate stops release 2 and rolls it back", async () => {
    const r = await runJson<{ ok: boolean; tutorials: ({ tutorial: string } & Tutorial02Result)[] }>(["quickstart", "--dir", join(root, "all")], { timeoutMs: 240_000 });
    expect(r.code, describeRun(r)).toBe(0);
    // npm start plays 01, 02, then 04 (tutorial-04.test.ts checks 04's steps).
    expect(r.json.tutorials.map((t) => [t.tutorial, t.ok])).toEqual([["01", true], ["02", true], ["04", true]]);
    const t2 = r.json.tutorials[1] as Tutorial02Result;
    expect(failed(t2)).toEqual([]);
    const names = t2.steps.map((s) => s.step);
    for (const want of ["control plane", "enrolled", "single-use", "converged", "node-a path", "node-b path", "node-c path", "verifiable lifecycle", "agents on release 1",
      "release 2", "rollback target", "channel latest", "rollout plan", "canary", "behaviour gate", "rolled back", "canary back", "canary's own telemetry", "stop"]) {
      expect(names, want).toContain(want);
    }
    const step = (name: string): string => t2.steps.find((s) => s.step === name)?.detail ?? "";
    expect(step("node-a path")).toContain("polled → candidate_detected → verify_started → verify_passed → activation_started → activated");
    expect(step("behaviour gate")).toMatch(/policy deny rate [\d.]+ in the cohort \(\d+ decisions\) vs [\d.]+ in the rest \(\d+\): ratio [\d.]+ > 2 allowed/);
    expect(t2.rollout).toMatchObject({ phase: "rolled_back" });
    const untouched = names.filter((n) => n.endsWith(" untouched"));
    expect(untouched).toHaveLength(2);
    expect(untouched).not.toContain(`${t2.rollout?.canary ?? "?"} untouched`);
    expect(t2.nodes.map((n) => n.node_id)).toEqual(["node-a", "node-b", "node-c"]);
    expect(t2.processes).toHaveLength(4);
    for (const p of t2.processes) expect(alive(p.pid), `${p.name} pid ${p.pid}`).toBe(false);
  }, 240_000);
});

describe("tutorial 02 FAILS when a step does not behave", () => {
  it("a node whose trust root pins another key never activates: the converge step fails naming it, and every child is stopped", async () => {
    const r = await runTutorial02({ dir: join(root, "untrusted"), examplesDir: EXAMPLES, fault: "node-untrusted-key", timeouts: { convergeMs: 30_000 } });
    expect(r.ok).toBe(false);
    const bad = failed(r);
    expect(bad.map((s) => s.step)).toEqual(["converge"]);
    expect(bad[0]?.detail).toMatch(/node-c refused release 1: verify_failed/);
    expect(r.rollout).toBeNull();
    expect(r.processes).toHaveLength(4);
    for (const p of r.processes) expect(alive(p.pid), `${p.name} pid ${p.pid}`).toBe(false);
  }, 120_000);

  it("a plan created without its behaviour gate lets release 2 through: the rollback step fails, and the nodes running it are seen", async () => {
    const r = await runTutorial02({ dir: join(root, "nogate"), examplesDir: EXAMPLES, fault: "no-behaviour-gate", timeouts: { rolloutMs: 60_000 } });
    expect(r.ok).toBe(false);
    const bad = failed(r);
    expect(bad[0]?.step).toBe("rolled back");
    expect(bad[0]?.detail).toMatch(/the plan ended completed, not rolled_back/);
    // Release 2 went everywhere: every member succeeded on it.
    expect(bad[0]?.detail).toMatch(/its nodes: (node-[abc] succeeded(, )?){3}$/);
    expect(r.steps.find((s) => s.step === "behaviour gate")).toBeUndefined();
    for (const p of r.processes) expect(alive(p.pid), `${p.name} pid ${p.pid}`).toBe(false);
  }, 120_000);

  it("Ctrl-C (SIGINT to the quickstart alone) stops the tutorial and every child process it started, and exits non-zero", async () => {
    const child = spawn(process.execPath, [AUTONOMY_BIN, "quickstart", "--tutorial", "2", "--dir", join(root, "sigint")], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => void (out += d.toString("utf8")));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const deadline = Date.now() + 90_000;
    while (!out.includes("✓ converged") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(out, "the tutorial did not reach convergence").toContain("✓ converged");
    const pids = [...out.matchAll(/pid (\d+)/g)].map((m) => Number(m[1]));
    expect(pids).toHaveLength(4);
    child.kill("SIGINT");
    const code = await exited;
    expect(code).toBe(1);
    expect(out).toMatch(/✗ interrupted: /);
    expect(out).toContain("✓ stop: the control plane and 3 nodes stopped");
    for (const pid of pids) expect(alive(pid), `pid ${pid}`).toBe(false);
  }, 120_000);
});
