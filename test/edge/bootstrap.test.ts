/**
 * `edged precheck` end to end on a real node (test/helpers/edge-boot.ts):
 * first run, match, OS replacement → reconstruction (runtime reinstalled from
 * the verified staged bytes, slots intact, WAL untouched, epoch advanced,
 * evidence), each exit code, and the seed's TOCTOU rule.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { access, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { blake3 } from "hash-wasm";
import { readBootState, readEvidence, runPrecheck, stagedRuntimePaths } from "../../src/edge/index.js";
import { nodeWalLocation, readNodeState, stateRootPaths } from "../../src/node/index.js";
import { sha256Digest } from "../../src/lib/index.js";
import { OS_RELEASE_B, cloneNode, makeCerts, makeEdgeBootFixture, snapshotDir, snapshotInstall } from "../helpers/edge-boot.js";
import type { EdgeBootFixture } from "../helpers/edge-boot.js";
import { needs } from "../helpers/needs.js";

// A fixed instant an hour ahead: the fixture's certificates (made now, valid 90 days) are valid at it.
const FIXED = Math.floor(Date.now() / 1000) * 1000 + 3_600_000;
const clock = { now: () => FIXED };

describe("edged precheck: OS fingerprint, reconstruction, boot epoch", () => {
  let f: EdgeBootFixture;
  beforeAll(async () => {
    needs("openssl").check();
    f = await makeEdgeBootFixture();
  }, 120_000);

  it("first run records the fingerprint at boot epoch 0; the next run matches", async () => {
    const n = await cloneNode(f);
    const first = await runPrecheck({ configPath: n.config, clock });
    expect(first).toMatchObject({ exitCode: 0, outcome: "first_run", boot_epoch: 0 });
    expect((await readBootState(n.stateRoot))?.boot_epoch).toBe(0);
    const again = await runPrecheck({ configPath: n.config, clock });
    expect(again).toMatchObject({ exitCode: 0, outcome: "match", boot_epoch: 0, fingerprint: first.fingerprint });
    expect(await readEvidence(n.stateRoot)).toBeUndefined();
  });

  it("kernel-only change triggers reconstruction", async () => {
    const n = await cloneNode(f);
    const first = await runPrecheck({ configPath: n.config, clock });
    await writeFile(n.kernel, "6.1.0-21-amd64\n"); // os-release and architecture unchanged
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r).toMatchObject({ exitCode: 0, outcome: "reconstructed", boot_epoch: 1, previous_fingerprint: first.fingerprint });
    expect(r.fingerprint).not.toBe(first.fingerprint);
  });

  it("an OS replacement reinstalls the verified runtime, keeps slots and WAL, advances the epoch and writes evidence", async () => {
    const n = await cloneNode(f);
    await runPrecheck({ configPath: n.config, clock });
    const walBefore = await snapshotDir(nodeWalLocation(n.stateRoot).dir);
    expect(walBefore.size).toBeGreaterThan(0);
    const stateBefore = await readFile(stateRootPaths(n.stateRoot).state);
    // The OS is replaced: new os-release, new kernel, and the old runtime install is gone with the root partition.
    await writeFile(n.osRelease, OS_RELEASE_B);
    await writeFile(n.kernel, "6.12.9-amd64\n");
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r.exitCode).toBe(0);
    expect(r.outcome).toBe("reconstructed");
    // Exactly the operator's runtime, with its modes.
    const src = await snapshotDir(f.runtimeSrc);
    const installed = await snapshotInstall(n.installDir);
    expect([...installed.keys()].sort()).toEqual([...src.keys()].sort());
    for (const [p, b] of src) expect(installed.get(p)?.equals(b)).toBe(true);
    expect((await stat(join(n.installDir, "autonomy-runtime"))).mode & 0o777).toBe(0o755);
    // WAL and node state byte-identical.
    const walAfter = await snapshotDir(nodeWalLocation(n.stateRoot).dir);
    expect([...walAfter.keys()].sort()).toEqual([...walBefore.keys()].sort());
    for (const [p, b] of walBefore) expect(walAfter.get(p)?.equals(b), p).toBe(true);
    expect((await readFile(stateRootPaths(n.stateRoot).state)).equals(stateBefore)).toBe(true);
    // Evidence and epoch.
    const ev = await readEvidence(n.stateRoot);
    const state = await readNodeState(n.stateRoot);
    expect(ev).toMatchObject({ epoch: 1, new_fingerprint: r.fingerprint, previous_fingerprint: r.previous_fingerprint, reconstructed_at: new Date(FIXED).toISOString() });
    expect(ev?.restored).toEqual({ statement_digest: state.activation?.statement_digest, policy_current: state.current?.digest, policy_lkg: state.lkg?.digest ?? null });
    expect(ev?.installed?.manifest_digest).toBe(sha256Digest(await readFile(f.envelopeFile)));
    for (const file of ev?.installed?.files ?? []) expect(file.blake3).toBe(`blake3:${await blake3(src.get(file.path) ?? Buffer.alloc(0), 256)}`);
    expect((await readBootState(n.stateRoot))?.boot_epoch).toBe(1);
    // A second replacement: epoch 2, the evidence of epoch 1 moves to previous.
    await writeFile(n.kernel, "6.12.10-amd64\n");
    const r2 = await runPrecheck({ configPath: n.config, clock });
    expect(r2).toMatchObject({ exitCode: 0, outcome: "reconstructed", boot_epoch: 2 });
    expect((await readEvidence(n.stateRoot, "previous"))?.epoch).toBe(1);
    expect((await readEvidence(n.stateRoot))?.epoch).toBe(2);
    expect((await runPrecheck({ configPath: n.config, clock })).outcome).toBe("match");
  });

  it("reconstruction is TOCTOU-safe: a staged file swapped on disk right after verification is not what gets installed", async () => {
    const n = await cloneNode(f);
    await runPrecheck({ configPath: n.config, clock });
    await writeFile(n.kernel, "6.1.0-99-amd64\n");
    const staged = join(stagedRuntimePaths(n.stateRoot).files, "autonomy-runtime");
    const evil = "#!/bin/sh\necho evil\n"; // same length is not needed: nothing re-reads it
    let swapped = false;
    const r = await runPrecheck({
      configPath: n.config, clock,
      hooks: { afterVerify: async () => { await writeFile(staged, evil); swapped = true; } },
    });
    expect(swapped).toBe(true);
    expect(r.exitCode).toBe(0);
    expect(await readFile(staged, "utf8")).toBe(evil); // the swap happened on disk …
    expect(await readFile(join(n.installDir, "autonomy-runtime"), "utf8")).toBe(await readFile(join(f.runtimeSrc, "autonomy-runtime"), "utf8")); // … and was not installed
  });

  it("a tampered staged runtime fails reconstruction with exit 5, installs nothing and keeps the old fingerprint (edged must not start)", async () => {
    const n = await cloneNode(f);
    const first = await runPrecheck({ configPath: n.config, clock });
    await writeFile(join(stagedRuntimePaths(n.stateRoot).files, "lib", "policy-engine.wasm"), Buffer.from([0, 97, 115, 109, 1, 0, 0, 1]));
    await writeFile(n.kernel, "6.2.0-1-amd64\n");
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r).toMatchObject({ exitCode: 5, outcome: "failed" });
    expect(r.checks.at(-1)).toMatchObject({ name: "reconstruction", ok: false, code: "RECONSTRUCTION_FAILED" });
    expect(r.checks.at(-1)?.detail).toMatch(/policy-engine\.wasm does not match the signed manifest/);
    await expect(access(n.installDir)).rejects.toThrow();
    expect((await readBootState(n.stateRoot))?.composite_hash).toBe(first.fingerprint);
    expect(await readEvidence(n.stateRoot)).toBeUndefined();
  });

  it("a policy bundle missing from the bundle store fails reconstruction with exit 5", async () => {
    const n = await cloneNode(f);
    await runPrecheck({ configPath: n.config, clock });
    await rm(stateRootPaths(n.stateRoot).bundles, { recursive: true });
    await writeFile(n.kernel, "6.3.0-1-amd64\n");
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r.exitCode).toBe(5);
    expect(r.checks.at(-1)?.detail).toMatch(/restoring the activation and policy slots.*missing from the store/);
  });

  it("the active release missing from the release store fails reconstruction with exit 5", async () => {
    const n = await cloneNode(f);
    await runPrecheck({ configPath: n.config, clock });
    const s = await readNodeState(n.stateRoot);
    await rm(join(stateRootPaths(n.stateRoot).releaseStore, "blobs", "sha256", (s.activation?.image_digest ?? "").slice(7)));
    await writeFile(n.kernel, "6.3.0-2-amd64\n");
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r.exitCode).toBe(5);
    expect(r.checks.at(-1)?.detail).toMatch(/not in the node's release store/);
  });

  it("exit 1: an invalid config names the key", async () => {
    const n = await cloneNode(f);
    await writeFile(n.config, (await readFile(n.config, "utf8")).replace('id = "edge-a"', 'id = "edge-a"\nbogus = 1'));
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r).toMatchObject({ exitCode: 1, outcome: "failed" });
    expect(r.checks[0]).toMatchObject({ name: "config", ok: false, code: "EDGE_CONFIG_INVALID" });
    expect(r.checks[0]?.detail).toMatch(/\[node\] bogus: unknown key/);
  });

  it("exit 2: the state root missing, not a directory, or its state.json unreadable", async () => {
    const missing = await cloneNode(f);
    await rm(missing.stateRoot, { recursive: true });
    expect((await runPrecheck({ configPath: missing.config, clock })).exitCode).toBe(2);
    const file = await cloneNode(f);
    await rm(file.stateRoot, { recursive: true });
    await writeFile(file.stateRoot, "not a directory");
    expect((await runPrecheck({ configPath: file.config, clock })).exitCode).toBe(2);
    const corrupt = await cloneNode(f);
    await writeFile(stateRootPaths(corrupt.stateRoot).state, "{ torn");
    const r = await runPrecheck({ configPath: corrupt.config, clock });
    expect(r.exitCode).toBe(2);
    expect(r.checks.at(-1)).toMatchObject({ name: "state_root", code: "STATE_ROOT_INVALID" });
  });

  it("exit 3: a certificate unreadable, expiring within 7 days, or a CA expiring", async () => {
    const unreadable = await cloneNode(f);
    await rm(join(unreadable.dir, "certs", "node.crt"));
    expect((await runPrecheck({ configPath: unreadable.config, clock })).checks.at(-1)).toMatchObject({ name: "certificates", code: "CERT_UNREADABLE" });
    const soon = await cloneNode(f);
    makeCerts(join(soon.dir, "certs"), { days: 5 });
    const r = await runPrecheck({ configPath: soon.config });
    expect(r.exitCode).toBe(3);
    expect(r.checks.at(-1)).toMatchObject({ name: "certificates", code: "CERT_EXPIRING" });
    const fine = await cloneNode(f);
    makeCerts(join(fine.dir, "certs"), { days: 8 });
    expect((await runPrecheck({ configPath: fine.config })).exitCode).toBe(0);
    const ca = await cloneNode(f);
    makeCerts(join(ca.dir, "certs"), { caDays: 3 });
    expect((await runPrecheck({ configPath: ca.config })).exitCode).toBe(3);
    // Judged at the instant given: 8-day certificate, 2 days later it is within the window.
    expect((await runPrecheck({ configPath: fine.config, now: new Date(Date.now() + 2 * 86_400_000) })).exitCode).toBe(3);
  });

  it("exit 5: an unreadable OS identity (edged cannot tell whether the OS changed)", async () => {
    const n = await cloneNode(f);
    await rm(n.kernel);
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r.exitCode).toBe(5);
    expect(r.checks.at(-1)).toMatchObject({ name: "os_fingerprint", code: "OS_IDENTITY_UNREADABLE" });
  });

  it("without a runtime install directory a reconstruction still checks the slots and advances the epoch (installed: null)", async () => {
    const n = await cloneNode(f, { install: false });
    await runPrecheck({ configPath: n.config, clock });
    await writeFile(n.kernel, "6.4.0-1-amd64\n");
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r).toMatchObject({ exitCode: 0, outcome: "reconstructed", boot_epoch: 1 });
    expect((await readEvidence(n.stateRoot))?.installed).toBeNull();
  });

  needs("b3sum").it("the fingerprint is BLAKE3 of the canonical identity bytes, as b3sum computes it", async () => {
    const { execFileSync } = await import("node:child_process");
    const { identityPayload, readOsIdentity, osFingerprint } = await import("../../src/edge/index.js");
    const n = await cloneNode(f);
    const id = await readOsIdentity({ osReleaseFile: n.osRelease, kernelReleaseFile: n.kernel, machineArch: "x64" });
    const payload = join(n.dir, "identity.json");
    await writeFile(payload, identityPayload(id));
    const hex = execFileSync("b3sum", ["--no-names", payload], { encoding: "utf8" }).trim();
    expect(await osFingerprint(id)).toBe(`blake3:${hex}`);
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r.fingerprint).toBe(`blake3:${hex}`);
    // Keys sorted as RFC 8785 sorts them, whatever order the file had.
    expect(identityPayload(id)).toMatch(/^\{"identity_version":1,"kernel_release":"6\.1\.0-18-amd64","machine_arch":"x64","os_release":\{"ID":"debian","NAME":/);
  });

  it("a staged runtime file gone missing fails reconstruction (exit 5), nothing installed", async () => {
    const n = await cloneNode(f);
    await runPrecheck({ configPath: n.config, clock });
    const p = join(stagedRuntimePaths(n.stateRoot).files, "lib");
    await rm(p, { recursive: true });
    await mkdir(p);
    await writeFile(n.kernel, "6.5.0-1-amd64\n");
    const r = await runPrecheck({ configPath: n.config, clock });
    expect(r.exitCode).toBe(5);
    expect(r.checks.at(-1)?.detail).toMatch(/cannot open .*policy-engine\.wasm: ENOENT/);
    await expect(access(n.installDir)).rejects.toThrow();
  });
});

describe("edged precheck on a read-only state root", () => {
  const privileged = needs("root", "util-linux", "openssl");
  privileged.it("exit 2: a state root on a read-only mount is not writable (root bypasses mode bits, so a mount is the real test)", async () => {
    const { execFileSync } = await import("node:child_process");
    const f = await makeEdgeBootFixture();
    const n = await cloneNode(f);
    execFileSync("mount", ["-t", "tmpfs", "-o", "ro,size=1m,mode=0755", "tmpfs", n.stateRoot]);
    try {
      const r = await runPrecheck({ configPath: n.config, clock });
      expect(r.exitCode).toBe(2);
      expect(r.checks.at(-1)).toMatchObject({ name: "state_root", code: "STATE_ROOT_INVALID" });
      expect(r.checks.at(-1)?.detail).toMatch(/not writable \(EROFS\)/);
    } finally {
      execFileSync("umount", [n.stateRoot]);
    }
  }, 120_000);
});
