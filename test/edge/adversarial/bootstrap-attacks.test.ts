/**
 * Adversarial review, session 3 (helper adv): `edged precheck` and the
 * reconstruction against a hostile or damaged node. Tests named `attack: …`
 * that fail are findings (the report lists them); the others are regression
 * tests for attacks that held, each seen failing once with its defence broken.
 */
import { spawn } from "node:child_process";
import { chmod, chown, mkdir, readFile, rm, symlink, writeFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { RUNTIME_MANIFEST_TYPE, osFingerprint, readBootState, readEvidence, readOsIdentity, runPrecheck, stageRuntime, stagedRuntimePaths } from "../../../src/edge/index.js";
import { sha256Digest } from "../../../src/lib/index.js";
import { signEnvelope } from "../../../src/sign/index.js";
import { stateRootPaths } from "../../../src/node/index.js";
import { REPO_ROOT } from "../../helpers/cli.js";
import { cloneNode, makeEdgeBootFixture, snapshotDir, snapshotInstall } from "../../helpers/edge-boot.js";
import type { EdgeBootFixture } from "../../helpers/edge-boot.js";
import { needs } from "../../helpers/needs.js";

const FIXED = Math.floor(Date.now() / 1000) * 1000 + 3_600_000;
const clock = { now: () => FIXED };

/** `edged precheck` as a child, with AUTONOMY_CRASH_POINT set: the child SIGKILLs itself at that point. */
function precheckChild(config: string, crashPoint?: string): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const env = { ...process.env, ...(crashPoint === undefined ? {} : { AUTONOMY_CRASH_POINT: crashPoint }) };
  const child = spawn(process.execPath, [join(REPO_ROOT, "bin", "edged.js"), "--config", config, "precheck"], { cwd: REPO_ROOT, stdio: "ignore", env });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });
}

/**
 * A FIFO at `path` fed `bytes` by `dd`: returns whether dd managed to write
 * them all. A bounded reader closes after its limit, so dd dies of SIGPIPE;
 * an unbounded one (readFile) drains everything (with /dev/zero behind a
 * symlink: until memory runs out).
 */
async function fifoFeeder(path: string, bytes: number): Promise<{ drained: Promise<boolean> }> {
  await new Promise<void>((resolve, reject) => {
    const mk = spawn("mkfifo", [path], { stdio: "ignore" });
    mk.once("error", reject);
    mk.once("exit", (c) => (c === 0 ? resolve() : reject(new Error(`mkfifo exit ${c}`))));
  });
  const dd = spawn("dd", ["if=/dev/zero", `of=${path}`, "bs=65536", `count=${Math.ceil(bytes / 65536)}`, "status=none"], { stdio: "ignore" });
  return { drained: new Promise((resolve) => dd.once("exit", (code, signal) => resolve(code === 0 && signal === null))) };
}

describe("adversarial review 3: edged precheck and reconstruction", () => {
  let f: EdgeBootFixture;
  beforeAll(async () => {
    needs("openssl").check();
    f = await makeEdgeBootFixture();
  }, 120_000);

  // ---- findings ----

  it("attack: an os_fingerprint.json restored from an old backup does not roll the boot epoch back (3 → 1)", async () => {
    const n = await cloneNode(f);
    await runPrecheck({ configPath: n.config, clock });
    const fpFile = stateRootPaths(n.stateRoot).osFingerprint;
    const epoch0 = await readFile(fpFile);
    for (const k of ["6.2.0-1", "6.3.0-1", "6.4.0-1"]) {
      await writeFile(n.kernel, `${k}-amd64\n`);
      await runPrecheck({ configPath: n.config, clock });
    }
    expect((await readBootState(n.stateRoot))?.boot_epoch).toBe(3);
    // An operator restores bootstrap/ from last month's backup (or a local user with write access to the state root does).
    await writeFile(fpFile, epoch0);
    const r = await runPrecheck({ configPath: n.config, clock });
    // epoch/current says the node reached epoch 3: refusing (exit 2) or going on from 3 are honest; 1 is not.
    if (r.exitCode === 0) expect(r.boot_epoch, "boot epoch after the restore").toBeGreaterThanOrEqual(4);
    else expect(r.exitCode).toBe(2);
  });

  it("attack: a boot-epoch rollback to an epoch whose fingerprint still matches is refused, not accepted with the newer evidence moved to epoch/abandoned", async () => {
    const n = await cloneNode(f);
    await runPrecheck({ configPath: n.config, clock });
    for (const k of ["6.2.0-1", "6.3.0-1", "6.4.0-1"]) {
      await writeFile(n.kernel, `${k}-amd64\n`);
      await runPrecheck({ configPath: n.config, clock });
    }
    // Same OS, boot_epoch lowered by hand: the crash rule (evidence of epoch N+1 uncommitted) cannot explain evidence of epoch 3 over a file of epoch 0.
    const fpFile = stateRootPaths(n.stateRoot).osFingerprint;
    const doc = JSON.parse(await readFile(fpFile, "utf8")) as { boot_epoch: number };
    await writeFile(fpFile, JSON.stringify({ ...doc, boot_epoch: 0 }));
    const r = await runPrecheck({ configPath: n.config, clock });
    if (r.exitCode === 0) expect(r.boot_epoch).toBeGreaterThanOrEqual(3);
    else expect(r.exitCode).toBe(2);
    expect((await readEvidence(n.stateRoot))?.epoch, "epoch/current keeps the evidence of epoch 3").toBe(3);
  });

  it("attack: an os-release source that is endless (a FIFO, /dev/zero behind a symlink) is read only up to its 64 KiB bound, not drained into memory", async () => {
    const n = await cloneNode(f);
    await runPrecheck({ configPath: n.config, clock });
    await rm(n.osRelease);
    const { drained } = await fifoFeeder(n.osRelease, 8 * 1024 * 1024);
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r.exitCode).toBe(5);
    expect(await drained, "the precheck read all 8 MiB of the FIFO before refusing it").toBe(false);
  }, 30_000);

  it("attack: two os-release files differing only in non-UTF-8 bytes get different fingerprints (U+FFFD decoding makes them collide)", async () => {
    const n = await cloneNode(f);
    const sources = { osReleaseFile: n.osRelease, kernelReleaseFile: n.kernel, machineArch: "x64" };
    await writeFile(n.osRelease, Buffer.concat([Buffer.from("ID=debian\nBUILD_ID="), Buffer.from([0xff]), Buffer.from("\n")]));
    const a = await osFingerprint(await readOsIdentity(sources));
    await writeFile(n.osRelease, Buffer.concat([Buffer.from("ID=debian\nBUILD_ID="), Buffer.from([0xfe]), Buffer.from("\n")]));
    const b = await osFingerprint(await readOsIdentity(sources));
    // Either refuse a non-UTF-8 identity (OS_IDENTITY_UNREADABLE) or hash what the file says: never equate two different OSes.
    expect(a).not.toBe(b);
  });

  it("attack: an os-release line `__proto__=…` is part of the identity (it was silently dropped: two OSes, one fingerprint)", async () => {
    const n = await cloneNode(f);
    const sources = { osReleaseFile: n.osRelease, kernelReleaseFile: n.kernel, machineArch: "x64" };
    await writeFile(n.osRelease, "ID=debian\n__proto__=build-1\n");
    const a = await readOsIdentity(sources).then(osFingerprint, () => "refused");
    await writeFile(n.osRelease, "ID=debian\n__proto__=build-2\n");
    const b = await readOsIdentity(sources).then(osFingerprint, () => "refused-too");
    expect(a).not.toBe(b);
  });

  it("attack: a world-writable state root fails the precheck (exit 2): any local user could rewrite the boot epoch, the staged runtime's sequence or plant symlinks", async () => {
    const n = await cloneNode(f);
    await chmod(n.stateRoot, 0o777);
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r.exitCode, r.checks.at(-1)?.detail).toBe(2);
  });

  needs("root").it("attack: a state root owned by another (unprivileged) user fails the precheck run by root (exit 2)", async () => {
    const n = await cloneNode(f);
    await chown(n.stateRoot, 65534, 65534);
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r.exitCode, r.checks.at(-1)?.detail).toBe(2);
  });

  it("attack: a `.autonomy-install` symlink planted in the install dir does not make the reconstruction delete the files of the directory it points to", async () => {
    const n = await cloneNode(f);
    await runPrecheck({ configPath: n.config, clock });
    const victim = join(n.dir, "victim");
    await mkdir(victim);
    await writeFile(join(victim, "precious.db"), "do not delete");
    await mkdir(n.installDir, { recursive: true });
    await symlink(victim, join(n.installDir, ".autonomy-install"));
    await writeFile(n.kernel, "6.5.0-1-amd64\n");
    await runPrecheck({ configPath: n.config, clock });
    expect(await readdir(victim)).toContain("precious.db");
  });

  it("attack: a runtime file named like a flag (`-rf`, `x/--help`) is refused, as manifest.ts's SEGMENT_RE comment says (\"no leading dash\"), rather than installed", async () => {
    const { isSafeRelativePath } = await import("../../../src/edge/index.js");
    expect(isSafeRelativePath("-rf")).toBe(false);
    expect(isSafeRelativePath("x/--help")).toBe(false);
  });

  // ---- held (regression tests) ----

  it("attack: a garbage or truncated os_fingerprint.json fails the precheck (exit 2) and is left as it was, never read as a first run at epoch 0", async () => {
    const n = await cloneNode(f);
    await runPrecheck({ configPath: n.config, clock });
    const fpFile = stateRootPaths(n.stateRoot).osFingerprint;
    const good = await readFile(fpFile);
    for (const bad of [good.subarray(0, good.length >> 1), Buffer.from([0, 1, 2, 0xff, 0xfe]), Buffer.from("{}"), Buffer.from('{"composite_hash":"blake3:00","boot_epoch":-1,"captured_at":"x","identity":{}}')]) {
      await writeFile(fpFile, bad);
      const r = await runPrecheck({ configPath: n.config, clock });
      expect(r.exitCode).toBe(2);
      expect((await readFile(fpFile)).equals(bad)).toBe(true);
    }
  });

  it("attack: a staged runtime file replaced by a symlink (to bytes matching the manifest) is refused, exit 5, nothing installed", async () => {
    const n = await cloneNode(f);
    await runPrecheck({ configPath: n.config, clock });
    const staged = join(stagedRuntimePaths(n.stateRoot).files, "autonomy-runtime");
    const elsewhere = join(n.dir, "elsewhere");
    await writeFile(elsewhere, await readFile(staged));
    await rm(staged);
    await symlink(elsewhere, staged);
    await writeFile(n.kernel, "6.5.0-1-amd64\n");
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r.exitCode).toBe(5);
    expect(r.checks.at(-1)?.detail).toMatch(/autonomy-runtime/);
    expect((await readBootState(n.stateRoot))?.boot_epoch).toBe(0);
  });

  it("attack: a staged runtime file grown far past its manifest size is refused by size before it is read, exit 5", async () => {
    const n = await cloneNode(f);
    await runPrecheck({ configPath: n.config, clock });
    const staged = join(stagedRuntimePaths(n.stateRoot).files, "lib", "policy-engine.wasm");
    const { truncate } = await import("node:fs/promises");
    await truncate(staged, 2 * 1024 * 1024 * 1024); // sparse: 2 GiB on paper
    await writeFile(n.kernel, "6.5.0-1-amd64\n");
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r.exitCode).toBe(5);
    expect(r.checks.at(-1)?.detail).toMatch(/2147483648 bytes/);
  });

  it("attack: a validly signed runtime manifest naming `../`, absolute, setuid or setgid entries is refused by its schema in `edged runtime stage`; nothing is staged or written outside", async () => {
    const n = await cloneNode(f);
    const src = join(n.dir, "evil-src");
    await mkdir(join(src, "x"), { recursive: true });
    const bytes = Buffer.from("#!/bin/sh\necho pwned\n");
    await writeFile(join(src, "x", "y"), bytes);
    const before = await snapshotDir(stagedRuntimePaths(n.stateRoot).dir);
    const cases: [string, number][] = [["../evil", 0o755], ["x/../../evil", 0o755], ["/tmp/evil", 0o755], ["x/./y", 0o755], ["x//y", 0o755], ["x/y", 0o4755], ["x/y", 0o2755]];
    for (const [path, mode] of cases) {
      const payload = { version: 1, sequence: Date.now(), files: [{ path, size: bytes.length, sha256: sha256Digest(bytes), mode }] };
      const env = join(n.dir, "evil.dsse.json");
      await writeFile(env, JSON.stringify(signEnvelope(RUNTIME_MANIFEST_TYPE, Buffer.from(JSON.stringify(payload)), [f.keys.privateKey])));
      await expect(stageRuntime({ stateRoot: n.stateRoot, fromDir: src, envelopeFile: env }), `${path} ${mode.toString(8)}`).rejects.toThrow(/the runtime manifest is malformed/);
    }
    const after = await snapshotDir(stagedRuntimePaths(n.stateRoot).dir);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    expect(await readdir(n.dir)).not.toContain("evil");
  });

  it("attack: a binary os-release (NUL bytes, no KEY=value) and one over 64 KiB fail the precheck (exit 5), not hash garbage", async () => {
    const n = await cloneNode(f);
    await runPrecheck({ configPath: n.config, clock });
    await writeFile(n.osRelease, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 0, 0, 0x0a, 0x01]));
    expect((await runPrecheck({ configPath: n.config, clock })).exitCode).toBe(5);
    await writeFile(n.osRelease, `ID=debian\nX=${"a".repeat(70 * 1024)}\n`);
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r.exitCode).toBe(5);
    expect(r.checks.at(-1)?.detail).toMatch(/65536/);
  });

  it("attack: killed after the install and before the fingerprint commit, twice in a row (two crash points), the node still reconstructs exactly once to epoch 1", async () => {
    const n = await cloneNode(f);
    await runPrecheck({ configPath: n.config, clock });
    await writeFile(n.kernel, "6.6.0-1-amd64\n");
    for (const point of ["reconstruct-after-install", "reconstruct-after-evidence", "reconstruct-after-install"]) {
      const c = await precheckChild(n.config, point);
      expect(c.signal, point).toBe("SIGKILL");
      expect((await readBootState(n.stateRoot))?.boot_epoch, point).toBe(0);
    }
    const done = await precheckChild(n.config);
    expect(done.code).toBe(0);
    expect((await readBootState(n.stateRoot))?.boot_epoch).toBe(1);
    expect((await readEvidence(n.stateRoot))?.epoch).toBe(1);
    expect(await readEvidence(n.stateRoot, "previous")).toBeUndefined();
    const installed = await snapshotInstall(n.installDir);
    const src = await snapshotDir(f.runtimeSrc);
    expect([...installed.keys()].sort()).toEqual([...src.keys()].sort());
    for (const [p, b] of src) expect(installed.get(p)?.equals(b), p).toBe(true);
    // One tree left behind the `current` link: the killed runs' trees were removed.
    expect((await readdir(join(n.installDir, ".autonomy-install"))).filter((e) => e.startsWith("tree-"))).toHaveLength(1);
  }, 60_000);
});
