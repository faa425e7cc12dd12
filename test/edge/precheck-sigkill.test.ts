/**
 * SIGKILL of `edged precheck` at random moments of a reconstruction (seed
 * printed; replay with PRECHECK_SIGKILL_SEED=<seed>, more with
 * PRECHECK_SIGKILL_ITERATIONS=<n>). After each kill the node is either not yet
 * reconstructed (old fingerprint, epoch 0) or fully so (epoch 1); the next
 * precheck always ends reconstructed at epoch 1 exactly once, with the
 * verified runtime installed and the WAL untouched.
 */
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readBootState, readEvidence, runPrecheck } from "../../src/edge/index.js";
import { nodeWalLocation } from "../../src/node/index.js";
import { seededRng } from "../../src/lib/index.js";
import { REPO_ROOT } from "../helpers/cli.js";
import { cloneNode, makeEdgeBootFixture, snapshotDir, snapshotInstall } from "../helpers/edge-boot.js";
import type { EdgeBootFixture } from "../helpers/edge-boot.js";
import { needs } from "../helpers/needs.js";

const ITERATIONS = Number(process.env.PRECHECK_SIGKILL_ITERATIONS ?? 8);

function precheckChild(config: string, killAfterMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, [join(REPO_ROOT, "bin", "edged.js"), "--config", config, "precheck"], { cwd: REPO_ROOT, stdio: "ignore" });
  const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), killAfterMs);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, ms: Date.now() - started });
    });
  });
}

describe("SIGKILL of edged precheck at random moments of a reconstruction", () => {
  let f: EdgeBootFixture;
  beforeAll(async () => {
    needs("openssl").check();
    f = await makeEdgeBootFixture();
  }, 120_000);

  it(`reconstructs exactly once over ${ITERATIONS} seeded kills`, async () => {
    const seed = Number(process.env.PRECHECK_SIGKILL_SEED ?? Date.now() % 2 ** 31);
    console.log(`precheck SIGKILL harness seed=${seed} iterations=${ITERATIONS} (replay: PRECHECK_SIGKILL_SEED=${seed})`);
    const rng = seededRng(seed);
    const prepare = async (): Promise<Awaited<ReturnType<typeof cloneNode>>> => {
      const n = await cloneNode(f);
      expect((await runPrecheck({ configPath: n.config })).outcome).toBe("first_run");
      await writeFile(n.kernel, "6.9.0-1-amd64\n");
      return n;
    };
    const full = await precheckChild((await prepare()).config);
    expect(full.code).toBe(0);
    const outcomes = { before: 0, after: 0 };
    for (let i = 0; i < ITERATIONS; i++) {
      const n = await prepare();
      const wal = await snapshotDir(nodeWalLocation(n.stateRoot).dir);
      // Most of a child's life is module loading: aim the kills at the second half, where the precheck works.
      await precheckChild(n.config, Math.floor(full.ms * (0.5 + 0.6 * rng())));
      const epoch = (await readBootState(n.stateRoot))?.boot_epoch;
      expect([0, 1]).toContain(epoch);
      outcomes[epoch === 0 ? "before" : "after"] += 1;
      const r = await runPrecheck({ configPath: n.config });
      expect(r).toMatchObject({ exitCode: 0, outcome: epoch === 0 ? "reconstructed" : "match", boot_epoch: 1 });
      expect((await readEvidence(n.stateRoot))?.epoch).toBe(1);
      expect(await readEvidence(n.stateRoot, "previous")).toBeUndefined();
      const installed = await snapshotInstall(n.installDir);
      for (const [p, b] of await snapshotDir(f.runtimeSrc)) expect(installed.get(p)?.equals(b), p).toBe(true);
      const after = await snapshotDir(nodeWalLocation(n.stateRoot).dir);
      for (const [p, b] of wal) expect(after.get(p)?.equals(b), p).toBe(true);
    }
    console.log(`precheck SIGKILL harness: ${outcomes.before} killed before the commit point, ${outcomes.after} after, 0 inconsistent`);
  }, 300_000);
});
