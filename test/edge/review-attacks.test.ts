/**
 * Adversarial review of the landed bootstrap, pki and config parts (helper
 * e-rev1). Each test is named after an attack and failed on main when it was
 * written; the report lists the recommended fix for each.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { RUNTIME_MANIFEST_TYPE, loadEdgeConfig, planMigration, readBootState, readEvidence, runPrecheck, signRuntimeManifest, stageRuntime, stagedRuntimePaths } from "../../src/edge/index.js";
import { nodeWalLocation, stateRootPaths } from "../../src/node/index.js";
import { initCa, issueCert } from "../../src/pki/index.js";
import { sha256Digest } from "../../src/lib/index.js";
import { signEnvelope } from "../../src/sign/index.js";
import { cloneNode, makeEdgeBootFixture, snapshotDir } from "../helpers/edge-boot.js";
import type { EdgeBootFixture } from "../helpers/edge-boot.js";
import { needs } from "../helpers/needs.js";

const FIXED = Math.floor(Date.now() / 1000) * 1000 + 3_600_000;
const clock = { now: () => FIXED };

describe("adversarial review: edged precheck and runtime staging", () => {
  let f: EdgeBootFixture;
  beforeAll(async () => {
    needs("openssl").check();
    f = await makeEdgeBootFixture();
  }, 120_000);

  it("attack: a precheck lock left by a power cut whose pid is reused by a live process after reboot does not block every later precheck (exit 2 forever)", async () => {
    const n = await cloneNode(f);
    await runPrecheck({ configPath: n.config, clock });
    // A precheck killed by a power cut leaves bootstrap/precheck.lock behind, on the persistent state root.
    // After the reboot its pid belongs to another, live process (pid 1 is always alive).
    // The lock holds the pid and the boot id it was taken in (fix: file-lock records /proc/sys/kernel/random/boot_id);
    // a lock from before that fix (pid only) cannot be told apart from a live one and is still waited for.
    await writeFile(stateRootPaths(n.stateRoot).bootstrapLock, "1\n00000000-0000-4000-8000-000000000000\n");
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r.checks.at(-1)?.detail).not.toMatch(/another edged precheck/);
    expect(r.exitCode).toBe(0);
  }, 30_000);

  it("attack: runtime_install_dir set to the state root (or an ancestor of it) is refused, instead of a reconstruction swapping the whole state root away", async () => {
    const n = await cloneNode(f);
    const toml = await readFile(n.config, "utf8");
    for (const bad of [n.stateRoot, n.dir, join(n.stateRoot, "runtime")]) {
      await writeFile(n.config, toml.replace(/runtime_install_dir = .*/, `runtime_install_dir = ${JSON.stringify(bad)}`));
      await expect(loadEdgeConfig(n.config), bad).rejects.toMatchObject({ code: "EDGE_CONFIG_INVALID" });
      await expect(loadEdgeConfig(n.config), bad).rejects.toThrow(/runtime_install_dir/);
    }
  });

  it("attack: a reconstruction with runtime_install_dir = the state root keeps the WAL and node state (it swapped the whole state root for the runtime files)", async () => {
    const n = await cloneNode(f);
    const toml = await readFile(n.config, "utf8");
    await writeFile(n.config, toml.replace(/runtime_install_dir = .*/, `runtime_install_dir = ${JSON.stringify(n.stateRoot)}`));
    const walBefore = await snapshotDir(nodeWalLocation(n.stateRoot).dir);
    await runPrecheck({ configPath: n.config, clock });
    await writeFile(n.kernel, "6.9.0-1-amd64\n");
    await runPrecheck({ configPath: n.config, clock });
    const walAfter = await snapshotDir(nodeWalLocation(n.stateRoot).dir).catch(() => new Map<string, Buffer>());
    expect([...walAfter.keys()].sort()).toEqual([...walBefore.keys()].sort());
    await expect(readFile(stateRootPaths(n.stateRoot).state)).resolves.toBeDefined();
  });

  it("attack: an older signed runtime manifest replayed to `edged runtime stage` does not roll the staged runtime back", async () => {
    const n = await cloneNode(f);
    // The operator ships runtime v2 (a fix), signed by the same trusted key, and it is staged.
    const v2 = join(n.dir, "runtime-v2");
    await mkdir(join(v2, "lib"), { recursive: true });
    await writeFile(join(v2, "autonomy-runtime"), "#!/bin/sh\necho runtime v2\n", { mode: 0o755 });
    await writeFile(join(v2, "lib", "policy-engine.wasm"), Buffer.from([0, 97, 115, 109, 1, 0, 0, 2]));
    const { envelope } = await signRuntimeManifest(v2, [f.keys.privateKey]);
    const v2Envelope = join(n.dir, "runtime-v2.dsse.json");
    await writeFile(v2Envelope, JSON.stringify(envelope));
    await stageRuntime({ stateRoot: n.stateRoot, fromDir: v2, envelopeFile: v2Envelope });
    // Someone with the old (vulnerable) runtime and its still-valid envelope stages it again.
    await expect(stageRuntime({ stateRoot: n.stateRoot, fromDir: f.runtimeSrc, envelopeFile: f.envelopeFile })).rejects.toMatchObject({ code: "RUNTIME_MANIFEST_INVALID" });
    expect(await readFile(join(stagedRuntimePaths(n.stateRoot).files, "autonomy-runtime"), "utf8")).toContain("runtime v2");
    // The same sequence with other content is refused too; re-staging v2 itself is fine.
    const v2manifest = JSON.parse(Buffer.from(envelope.payload, "base64").toString("utf8")) as { sequence: number };
    await writeFile(join(v2, "autonomy-runtime"), "#!/bin/sh\necho runtime v2-other\n", { mode: 0o755 });
    const other = await signRuntimeManifest(v2, [f.keys.privateKey], { sequence: v2manifest.sequence });
    const otherEnvelope = join(n.dir, "runtime-v2-other.dsse.json");
    await writeFile(otherEnvelope, JSON.stringify(other.envelope));
    await expect(stageRuntime({ stateRoot: n.stateRoot, fromDir: v2, envelopeFile: otherEnvelope })).rejects.toThrow(/same as the runtime already staged/);
    await writeFile(join(v2, "autonomy-runtime"), "#!/bin/sh\necho runtime v2\n", { mode: 0o755 });
    await expect(stageRuntime({ stateRoot: n.stateRoot, fromDir: v2, envelopeFile: v2Envelope })).resolves.toBeDefined();
  });

  it("attack: a runtime signed from a directory with world-writable files is never installed group- or world-writable (a local user could swap the executable root runs)", async () => {
    const n = await cloneNode(f);
    await runPrecheck({ configPath: n.config, clock });
    const src = join(n.dir, "runtime-777");
    await mkdir(src, { recursive: true });
    await writeFile(join(src, "autonomy-runtime"), "#!/bin/sh\necho runtime 777\n");
    await chmod(join(src, "autonomy-runtime"), 0o777); // e.g. unpacked from a zip or a network share
    // Fix: signing refuses it (the operator is told to chmod go-w) …
    await expect(signRuntimeManifest(src, [f.keys.privateKey])).rejects.toThrow(/group- or world-writable/);
    // … and a manifest signed with such a mode anyway (another signer) is refused at stage time.
    const bytes = await readFile(join(src, "autonomy-runtime"));
    const payload = { version: 1, sequence: Date.now(), files: [{ path: "autonomy-runtime", size: bytes.length, sha256: sha256Digest(bytes), mode: 0o777 }] };
    const env = join(n.dir, "runtime-777.dsse.json");
    await writeFile(env, JSON.stringify(signEnvelope(RUNTIME_MANIFEST_TYPE, Buffer.from(JSON.stringify(payload)), [f.keys.privateKey])));
    await expect(stageRuntime({ stateRoot: n.stateRoot, fromDir: src, envelopeFile: env })).rejects.toThrow(/group- or world-writable/);
    await writeFile(n.kernel, "6.12.0-1-amd64\n");
    await runPrecheck({ configPath: n.config, clock });
    const { stat } = await import("node:fs/promises");
    for (const p of [join(stagedRuntimePaths(n.stateRoot).files, "autonomy-runtime"), join(n.installDir, "autonomy-runtime")]) {
      const mode = await stat(p).then((st) => st.mode & 0o777, () => 0);
      expect(mode & 0o022, `${p} mode ${mode.toString(8)}`).toBe(0);
    }
  });

  it("attack: a certificate issued by the fleet CA for another node name fails the precheck (exit 3)", async () => {
    const n = await cloneNode(f);
    // The fixture's certificate is CN=edge-a; this node calls itself edge-b.
    await writeFile(n.config, (await readFile(n.config, "utf8")).replace('id = "edge-a"', 'id = "edge-b"'));
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r.exitCode).toBe(3);
    expect(r.checks.at(-1)?.detail).toMatch(/edge-b/);
  });

  it("attack: SIGKILL of `edged runtime stage` between its two renames does not leave the node unable to reconstruct (the old staged runtime is recovered, not deleted)", async () => {
    const n = await cloneNode(f);
    await runPrecheck({ configPath: n.config, clock });
    // installTree renames runtime/ → .runtime.old-* and then .runtime.new-* → runtime/: killed in between,
    // the state root holds the complete old staged runtime under the stray name and no runtime/.
    const staged = stagedRuntimePaths(n.stateRoot).dir;
    await rename(staged, join(n.stateRoot, ".runtime.old-0123456789ab"));
    await writeFile(n.kernel, "6.8.0-1-amd64\n");
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r.exitCode, r.checks.at(-1)?.detail).toBe(0);
  });

  it("attack: evidence of a reconstruction killed before its commit point does not stand as the current epoch's evidence once the node boots its old OS again", async () => {
    const n = await cloneNode(f);
    const first = await runPrecheck({ configPath: n.config, clock });
    const fpFile = stateRootPaths(n.stateRoot).osFingerprint;
    const committed = await readFile(fpFile);
    const oldKernel = await readFile(n.kernel);
    await writeFile(n.kernel, "6.7.0-1-amd64\n");
    await runPrecheck({ configPath: n.config, clock });
    // Exactly what a kill at crash point reconstruct-after-evidence leaves: evidence of epoch 1, fingerprint file of epoch 0.
    await writeFile(fpFile, committed);
    await writeFile(n.kernel, oldKernel); // the node boots its old OS again (A/B fallback)
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r).toMatchObject({ exitCode: 0, outcome: "match", boot_epoch: 0, fingerprint: first.fingerprint });
    expect((await readBootState(n.stateRoot))?.boot_epoch).toBe(0);
    const ev = await readEvidence(n.stateRoot);
    // epoch/current must not claim a boot epoch the node never committed.
    expect(ev === undefined || ev.epoch <= 0).toBe(true);
  });

  it("attack: a node whose clock is behind (RTC reset after an OS replacement) is told its clock is wrong, not that its certificate is unreadable", async () => {
    const n = await cloneNode(f);
    const r = await runPrecheck({ configPath: n.config, clock, now: new Date(Date.now() - 2 * 86_400_000) });
    expect(r.exitCode).toBe(3);
    expect(r.checks.at(-1)?.code).not.toBe("CERT_UNREADABLE");
    expect(r.checks.at(-1)?.detail).toMatch(/clock/i);
  });

  it("attack: a lost os_fingerprint.json on a node with reconstruction evidence does not restart the boot epoch at 0 (\"never goes back\")", async () => {
    const n = await cloneNode(f);
    await runPrecheck({ configPath: n.config, clock });
    await writeFile(n.kernel, "6.10.0-1-amd64\n");
    expect((await runPrecheck({ configPath: n.config, clock })).boot_epoch).toBe(1);
    // The fingerprint file is lost (file-system damage, an operator cleaning bootstrap/), the evidence of epoch 1 is not.
    const { rm } = await import("node:fs/promises");
    await rm(stateRootPaths(n.stateRoot).osFingerprint);
    const r = await runPrecheck({ configPath: n.config, clock });
    // Refusing (exit 2) or resuming at the evidence's epoch are both honest; "first run, epoch 0" is not.
    if (r.exitCode === 0) expect(r.boot_epoch).toBeGreaterThanOrEqual(1);
    else expect(r.exitCode).toBe(2);
    // Chosen fix: resume at the evidence's epoch (same OS: match, file rewritten) …
    expect(r).toMatchObject({ exitCode: 0, outcome: "match", boot_epoch: 1 });
    expect((await readBootState(n.stateRoot))?.boot_epoch).toBe(1);
    // … and lost again on a replaced OS: reconstruct from the evidence's epoch to the next.
    await rm(stateRootPaths(n.stateRoot).osFingerprint);
    await writeFile(n.kernel, "6.10.1-1-amd64\n");
    expect(await runPrecheck({ configPath: n.config, clock })).toMatchObject({ exitCode: 0, outcome: "reconstructed", boot_epoch: 2 });
  });

  it("attack: a node private key readable by every user fails the precheck (exit 3)", async () => {
    const n = await cloneNode(f);
    await chmod(join(n.dir, "certs", "node.key"), 0o644);
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r.exitCode).toBe(3);
    expect(r.checks.at(-1)?.detail).toMatch(/node\.key/);
  });
});

describe("adversarial review: autonomy cert", () => {
  it("attack: `cert issue` refuses a CA private key readable by group or others", async () => {
    const { mkdtemp } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const dir = await mkdtemp(join(tmpdir(), "rev-ca-"));
    await initCa({ outDir: dir });
    await chmod(join(dir, "ca.key"), 0o644);
    await expect(issueCert({ caDir: dir, name: "edge-a" })).rejects.toThrow(/ca\.key/);
  });

  it("attack: `cert issue --name ca` into the CA directory does not overwrite the fleet CA's own ca.key and ca.crt", async () => {
    const { mkdtemp } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const dir = await mkdtemp(join(tmpdir(), "rev-ca-"));
    await initCa({ outDir: dir });
    const caKey = await readFile(join(dir, "ca.key"));
    const caCrt = await readFile(join(dir, "ca.crt"));
    await issueCert({ caDir: dir, name: "ca" }).catch(() => undefined); // refusing is fine; destroying the CA is not
    expect((await readFile(join(dir, "ca.key"))).equals(caKey)).toBe(true);
    expect((await readFile(join(dir, "ca.crt"))).equals(caCrt)).toBe(true);
  });
});

describe("adversarial review: autonomy config migrate", () => {
  it("attack: a deeply nested edge.json under the size bound is EDGE_CONFIG_INVALID, not a raw stack overflow", () => {
    const deep = `{"x":${"[".repeat(400_000)}${"]".repeat(400_000)}}`;
    expect(() => planMigration("/tmp/edge.json", deep)).toThrow(expect.objectContaining({ code: "EDGE_CONFIG_INVALID" }));
  });
});

describe("adversarial review: autonomy config migrate --write as root", () => {
  needs("root").it("attack: `sudo autonomy config migrate --write` keeps the owner of an edge.toml owned by edged's account (else edged can no longer read its config: precheck exit 1)", async () => {
    const { chown, mkdtemp, stat } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { migrateEdgeConfigFile } = await import("../../src/edge/index.js");
    const dir = await mkdtemp(join(tmpdir(), "rev-mig-"));
    const file = join(dir, "edge.toml");
    await writeFile(file, '[node]\nid = "edge-a"\nstate_root = "/s"\n[transport]\ncert_file = "c"\nkey_file = "k"\nca_file = "a"\n', { mode: 0o600 });
    await chown(file, 4242, 4242); // the dedicated edged account the docs recommend
    const r = await migrateEdgeConfigFile(file, { write: true });
    const st = await stat(file);
    expect([st.uid, st.gid, st.mode & 0o777]).toEqual([4242, 4242, 0o600]);
    // The backup (the original's bytes, including anything secret in it) keeps owner and mode too.
    const bak = await stat(r.backup_file ?? "");
    expect([bak.uid, bak.gid, bak.mode & 0o777]).toEqual([4242, 4242, 0o600]);
  });
});

describe("adversarial review: the precheck under its own systemd unit's sandbox", () => {
  const privileged = needs("root", "util-linux", "openssl");
  privileged.it("attack: an OS replacement under edged-precheck.service (ProtectSystem=strict, ReadWritePaths= the install dir only) reconstructs instead of failing exit 5 on every boot", async () => {
    const { execFileSync } = await import("node:child_process");
    const f = await makeEdgeBootFixture();
    const n = await cloneNode(f);
    await runPrecheck({ configPath: n.config, clock });
    // What the unit's mount namespace looks like: the install dir's parent is read-only
    // (ProtectSystem=strict), the install dir itself a writable bind mount (ReadWritePaths=@RUNTIME_DIR@).
    const parent = join(n.dir, "opt");
    await mkdir(parent, { recursive: true });
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", parent]);
    try {
      await mkdir(n.installDir);
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", n.installDir]);
      try {
        execFileSync("mount", ["-o", "remount,ro", parent]);
        await writeFile(n.kernel, "6.11.0-1-amd64\n");
        const r = await runPrecheck({ configPath: n.config, clock });
        expect(r.exitCode, r.checks.at(-1)?.detail).toBe(0);
        expect(await readFile(join(n.installDir, "autonomy-runtime"), "utf8")).toContain("runtime v1");
      } finally {
        execFileSync("umount", ["-l", n.installDir]);
      }
    } finally {
      execFileSync("umount", ["-l", parent]);
    }
  }, 120_000);
});

describe("adversarial review: segment store eviction accounting", () => {
  it("attack: one corrupt byte in an early eviction record does not silently truncate every later record of the eviction log", async () => {
    const { mkdtemp } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { openSegmentStore } = await import("../../src/edge/index.js");
    const dir = await mkdtemp(join(tmpdir(), "rev-seg-"));
    const store = await openSegmentStore({ dir, ceilingBytes: 1 << 20 });
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await store.put(Buffer.from(`segment ${i}`), "data")).info.id);
    for (const id of ids) await store.remove(id, "purged");
    expect(store.evictions()).toHaveLength(4);
    // A single flipped byte inside the FIRST record (not a torn tail).
    const logPath = join(dir, "evictions.log");
    const log = await readFile(logPath);
    log[2] = 0x7e; // `{"seq"` → `{"~eq"`
    await writeFile(logPath, log);
    const reopened = await openSegmentStore({ dir, ceilingBytes: 1 << 20 }).then((s) => s.evictions(), (e: unknown) => e);
    // Either open refuses loudly, or the intact records 2..4 are still accounted for: never a silent loss of three records.
    if (Array.isArray(reopened)) expect(reopened.length).toBeGreaterThanOrEqual(3);
    else expect(reopened).toBeInstanceOf(Error);
    expect((await readFile(logPath)).length).toBe(log.length);
  });
});
