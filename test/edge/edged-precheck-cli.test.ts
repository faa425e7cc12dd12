/**
 * The bootstrap commands as child processes: `autonomy runtime manifest sign`,
 * `edged runtime stage`, `edged precheck` (its exit codes), and SIGKILL at
 * every durable step of a reconstruction (AUTONOMY_CRASH_POINT): the
 * fingerprint file is the commit point, so a rerun completes it, with the
 * epoch advanced once and the evidence of the epoch before kept in previous.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readBootState, readEvidence, stagedRuntimePaths } from "../../src/edge/index.js";
import { nodeWalLocation } from "../../src/node/index.js";
import { REPO_ROOT, runProcess } from "../helpers/cli.js";
import type { RunResult } from "../helpers/cli.js";
import { cloneNode, makeCerts, makeEdgeBootFixture, snapshotDir, snapshotInstall } from "../helpers/edge-boot.js";
import type { EdgeBootFixture } from "../helpers/edge-boot.js";
import { needs } from "../helpers/needs.js";

const tsx = (main: string, args: string[], env: Record<string, string> = {}): Promise<RunResult> =>
  // The built CLI (npm test builds first): a tsx child spends seconds compiling before it does anything.
  runProcess(process.execPath, [join(REPO_ROOT, "bin", main === "edged-main.ts" ? "edged.js" : "autonomy.js"), ...args], { env, timeoutMs: 60_000 });
const edged = (args: string[], env?: Record<string, string>): Promise<RunResult> => tsx("edged-main.ts", args, env);
const autonomy = (args: string[]): Promise<RunResult> => tsx("autonomy-main.ts", args);

const CRASH_POINTS = ["tree-before-swap", "reconstruct-after-install", "epoch-after-rotate", "reconstruct-after-evidence"];

describe("edged precheck and runtime staging (child processes)", () => {
  let f: EdgeBootFixture;
  beforeAll(async () => {
    needs("openssl").check();
    f = await makeEdgeBootFixture();
  }, 120_000);

  it("an operator signs a runtime, the node stages exactly the verified bytes; a tampered file stages nothing", async () => {
    const n = await cloneNode(f);
    const key = join(n.dir, "release.key");
    await writeFile(key, f.keys.privatePem, { mode: 0o600 });
    const out = join(n.dir, "signed.dsse.json");
    const signed = await autonomy(["runtime", "manifest", "sign", "--from", f.runtimeSrc, "--key", key, "--out", out, "--json"]);
    expect(signed.code, signed.stderr).toBe(0);
    expect(JSON.parse(signed.stdout)).toMatchObject({ ok: true, files: [{ path: "autonomy-runtime", mode: 0o755 }, { path: "lib/policy-engine.wasm" }] });
    const staged = await edged(["--config", n.config, "runtime", "stage", "--from", f.runtimeSrc, "--manifest", out, "--json"]);
    expect(staged.code, staged.stderr).toBe(0);
    const p = stagedRuntimePaths(n.stateRoot);
    expect((await readFile(p.envelope)).equals(await readFile(out))).toBe(true);
    const src = await snapshotDir(f.runtimeSrc);
    const got = await snapshotDir(p.files);
    expect([...got.keys()].sort()).toEqual([...src.keys()].sort());
    // Tampered after signing: refused, and the staged runtime is left as it was.
    const tampered = join(n.dir, "tampered");
    await runProcess("cp", ["-r", f.runtimeSrc, tampered]);
    await writeFile(join(tampered, "autonomy-runtime"), "#!/bin/sh\necho evil\n");
    const refused = await edged(["--config", n.config, "runtime", "stage", "--from", tampered, "--manifest", out, "--json"]);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout)).toMatchObject({ ok: false, code: "RUNTIME_MANIFEST_INVALID" });
    expect((await readFile(join(p.files, "autonomy-runtime"))).equals(src.get("autonomy-runtime") ?? Buffer.alloc(0))).toBe(true);
    // Signed by a key the node does not trust: refused.
    const other = join(n.dir, "other");
    const gen = await autonomy(["keys", "generate", "--out", other]);
    expect(gen.code, gen.stderr).toBe(0);
    const foreign = join(n.dir, "foreign.dsse.json");
    expect((await autonomy(["runtime", "manifest", "sign", "--from", f.runtimeSrc, "--key", `${other}.key`, "--out", foreign])).code).toBe(0);
    const untrusted = await edged(["--config", n.config, "runtime", "stage", "--from", f.runtimeSrc, "--manifest", foreign]);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/does not verify against the node's trust root/);
  });

  it("edged precheck exits 0 on a first run and a match, 3 with an expiring certificate, 1 with a bad config", async () => {
    const n = await cloneNode(f);
    const first = await edged(["--config", n.config, "precheck", "--json"]);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ ok: true, outcome: "first_run", boot_epoch: 0 });
    const text = await edged(["--config", n.config, "precheck"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/precheck: match \(boot epoch 0\)/);
    makeCerts(join(n.dir, "certs"), { days: 3 });
    const expiring = await edged(["--config", n.config, "precheck", "--json"]);
    expect(expiring.code).toBe(3);
    expect(JSON.parse(expiring.stdout)).toMatchObject({ ok: false, outcome: "failed", exitCode: 3 });
    await writeFile(n.config, "config_version = 1\n");
    expect((await edged(["--config", n.config, "precheck"])).code).toBe(1);
  });

  it.each(CRASH_POINTS)("killed at %s during a reconstruction, the next precheck completes it (epoch advanced once, WAL untouched)", async (point) => {
    const n = await cloneNode(f);
    expect((await edged(["--config", n.config, "precheck"])).code).toBe(0);
    await writeFile(n.kernel, "6.1.0-30-amd64\n");
    expect((await edged(["--config", n.config, "precheck"])).code).toBe(0); // epoch 1, evidence in current
    const wal = await snapshotDir(nodeWalLocation(n.stateRoot).dir);
    await writeFile(n.kernel, "6.1.0-31-amd64\n");
    const killed = await edged(["--config", n.config, "precheck"], { AUTONOMY_CRASH_POINT: point });
    expect(killed.code).toBe(-1); // died of SIGKILL
    expect((await readBootState(n.stateRoot))?.boot_epoch).toBe(1); // not committed
    const rerun = await edged(["--config", n.config, "precheck", "--json"]);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ outcome: "reconstructed", boot_epoch: 2 });
    expect((await readEvidence(n.stateRoot))?.epoch).toBe(2);
    expect((await readEvidence(n.stateRoot, "previous"))?.epoch).toBe(1);
    const installed = await snapshotInstall(n.installDir);
    for (const [p, b] of await snapshotDir(f.runtimeSrc)) expect(installed.get(p)?.equals(b), p).toBe(true);
    const after = await snapshotDir(nodeWalLocation(n.stateRoot).dir);
    for (const [p, b] of wal) expect(after.get(p)?.equals(b), p).toBe(true);
    expect(JSON.parse((await edged(["--config", n.config, "precheck", "--json"])).stdout)).toMatchObject({ outcome: "match", boot_epoch: 2 });
  }, 60_000);
});
