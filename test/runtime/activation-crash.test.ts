/**
 * SIGKILL during activation leaves a consistent node: the old activation or the
 * new one, never in between. Two harnesses over the real CLI process:
 *   - deterministic: the process kills itself (SIGKILL) at every named window
 *     between durable steps (AUTONOMY_CRASH_POINT);
 *   - randomized: the test SIGKILLs it after a random delay (seed printed,
 *     replay with ACTIVATION_CRASH_SEED=<seed>).
 * After each kill the state must verify, and a rerun must complete.
 */
import { describe, expect, it, beforeAll } from "vitest";
import { spawn } from "node:child_process";
import { cp, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { activateRelease } from "../../src/runtime/index.js";
import { LayoutRepository } from "../../src/oci/index.js";
import { openSlot, readNodeState, readTrustRoot, setTrustRoot } from "../../src/node/index.js";
import { keyIdOf } from "../../src/sign/index.js";
import { AUTONOMY_BIN, REPO_ROOT } from "../helpers/cli.js";
import { makeRelease, testKeys } from "../helpers/release.js";
import type { MadeRelease } from "../helpers/release.js";

const CRASH_POINTS = ["activate-after-verify", "activate-after-store", "policy-after-store", "state-before-commit", "state-after-commit"];
const RANDOM_ITERATIONS = Number(process.env.ACTIVATION_CRASH_ITERATIONS ?? 30);

interface Fixture {
  dir: string;
  baseline: string;
  v1: MadeRelease;
  v2: MadeRelease;
}

/** Runs `runtime activate` as a child; kills it after `killAfterMs` when given. Resolves with how it ended. */
function activateChild(f: Fixture, stateRoot: string, opts: { crashPoint?: string; killAfterMs?: number }): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
  const started = Date.now();
  const env = { ...process.env, ...(opts.crashPoint ? { AUTONOMY_CRASH_POINT: opts.crashPoint } : {}) };
  const child = spawn(process.execPath, [AUTONOMY_BIN, "runtime", "activate", `oci:${f.dir}/reg:v2`, "--state-root", stateRoot, "--json"], { cwd: REPO_ROOT, env, stdio: "ignore" });
  const timer = opts.killAfterMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), opts.killAfterMs);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, ms: Date.now() - started });
    });
  });
}

/** The node is on v1 or on v2, completely; both slots' bundles verify from the store. */
async function assertConsistent(f: Fixture, stateRoot: string): Promise<"v1" | "v2"> {
  const s = await readNodeState(stateRoot);
  const on = s.activation?.image_digest === f.v2.digest ? "v2" : "v1";
  const rel = on === "v2" ? f.v2 : f.v1;
  expect(s.activation?.image_digest).toBe(rel.digest);
  expect(s.activation?.statement_digest).toBe(rel.signed.statement.digest);
  expect(s.highest_statement_digest).toBe(rel.signed.statement.digest);
  expect(s.activation?.policy_digest).toBe(rel.bundleDigest);
  expect(s.current?.digest).toBe(rel.bundleDigest);
  expect(s.highest_sequence).toBe(on === "v2" ? 2 : 1);
  for (const slot of [s.current, s.lkg]) {
    if (!slot) continue;
    const loaded = await openSlot(stateRoot, slot);
    loaded.engine.dispose();
  }
  // The node's own release store stays a readable image layout whatever the kill interrupted.
  await new LayoutRepository(join(stateRoot, "activation", "store")).listTags();
  return on;
}

async function freshState(f: Fixture, name: string): Promise<string> {
  const root = join(f.dir, name);
  await cp(f.baseline, root, { recursive: true });
  return root;
}

describe("SIGKILL during `runtime activate`", () => {
  let f: Fixture;
  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), "activate-crash-"));
    const keys = testKeys();
    const v1 = await makeRelease({ ref: `oci:${dir}/reg:v1`, keys, sequence: 1, agentText: "one" });
    const v2 = await makeRelease({ ref: `oci:${dir}/reg:v2`, keys, sequence: 2, agentText: "two", policies: `${REPO_ROOT}examples/policies` });
    const baseline = join(dir, "baseline");
    await setTrustRoot(baseline, { keys: [keys.publicPem], repository: `oci:${dir}/reg` });
    await activateRelease({ ref: v1.ref, stateRoot: baseline });
    f = { dir, baseline, v1, v2 };
  });

  it.each(CRASH_POINTS)("leaves the old or the new activation when killed at %s, and a rerun completes", async (point) => {
    const root = await freshState(f, `point-${point}`);
    const r = await activateChild(f, root, { crashPoint: point });
    expect(r.signal).toBe("SIGKILL");
    const on = await assertConsistent(f, root);
    expect(on).toBe(point === "state-after-commit" ? "v2" : "v1");
    const again = await activateChild(f, root, {});
    expect(again.code).toBe(0);
    expect(await assertConsistent(f, root)).toBe("v2");
  });

  it(`stays consistent under ${RANDOM_ITERATIONS} SIGKILLs at random moments`, async () => {
    const seed = Number(process.env.ACTIVATION_CRASH_SEED ?? Date.now() % 2 ** 31);
    console.log(`activation crash harness seed=${seed} iterations=${RANDOM_ITERATIONS} (replay: ACTIVATION_CRASH_SEED=${seed})`);
    let state = seed;
    const rand = (): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state / 2 ** 32;
    };
    const full = await activateChild(f, await freshState(f, "timing"), {});
    expect(full.code).toBe(0);
    const outcomes = { v1: 0, v2: 0 };
    for (let i = 0; i < RANDOM_ITERATIONS; i++) {
      const root = await freshState(f, `random-${i}`);
      await activateChild(f, root, { killAfterMs: Math.floor(rand() * full.ms * 1.2) });
      outcomes[await assertConsistent(f, root)] += 1;
    }
    console.log(`activation crash harness: ${outcomes.v1} left on v1, ${outcomes.v2} on v2, 0 inconsistent`);
    expect(outcomes.v1 + outcomes.v2).toBe(RANDOM_ITERATIONS);
  }, 300_000);

  it("keeps the old sequence floor when `trust set` is killed between trust.json and the state, and a rerun resets it", async () => {
    const root = await freshState(f, "trust-rotation");
    const fresh = testKeys();
    const pub = join(f.dir, "fresh.pub");
    await writeFile(pub, fresh.publicPem);
    const args = [AUTONOMY_BIN, "runtime", "trust", "set", "--state-root", root, "--key", pub, "--json"];
    const killed = await new Promise<NodeJS.Signals | null>((resolve, reject) => {
      const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env: { ...process.env, AUTONOMY_CRASH_POINT: "trust-after-write" }, stdio: "ignore" });
      child.once("error", reject);
      child.once("exit", (_code, signal) => resolve(signal));
    });
    expect(killed).toBe("SIGKILL");
    expect((await readTrustRoot(root))?.keys.map((k) => k.keyId)).toEqual([keyIdOf(fresh.publicKey)]);
    expect((await readNodeState(root)).highest_sequence).toBe(1);
    const rerun = await setTrustRoot(root, { keys: [fresh.publicPem] });
    expect(rerun.rotation?.floor_reset).toBe(true);
    expect(rerun.state.highest_sequence).toBe(0);
  });

  it("breaks a lock left by a killed activation (no wedged node)", async () => {
    const root = await freshState(f, "stale-lock");
    const r = await activateChild(f, root, { crashPoint: "state-before-commit" });
    expect(r.signal).toBe("SIGKILL");
    // The dead holder's pid, and the boot id where the kernel has one (src/lib/file-lock.ts: a lock from another boot is stale too).
    expect(await readFile(join(root, "policy", "state.lock"), "utf8")).toMatch(/^[0-9]+(\n[0-9a-f-]{36}\n)?$/);
    const again = await activateChild(f, root, {});
    expect(again.code).toBe(0);
  });
});
