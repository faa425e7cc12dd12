import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { stateRootPaths } from "../../node/index.js";
import { abandonUncommittedEvidence, writeBootFile, writeEvidence } from "../bootstrap/boot-state.js";
import type { EpochEvidence } from "../bootstrap/boot-state.js";
import { readBootStatus, registerBootMetrics } from "./boot-status.js";

const FP = (c: string): string => `blake3:${c.repeat(64)}`;
const evidence = (epoch: number, at: string): EpochEvidence => ({
  epoch, previous_fingerprint: FP(String(epoch - 1)), new_fingerprint: FP(String(epoch)), reconstructed_at: at,
  installed: { manifest_digest: `sha256:${"e".repeat(64)}`, install_dir: "/opt/autonomy", files: [] },
  restored: { statement_digest: null, policy_current: null, policy_lkg: null },
});

describe("the boot epoch edged reports (status and metrics)", () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "boot-status-"));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("follows precheck's files: none before the first run, epoch 0, an uncommitted attempt, an abandoned one, then a completed reconstruction", async () => {
    expect(await readBootStatus(root)).toEqual({ boot_epoch: null, os_fingerprint: null, captured_at: null, last_reconstruction: null, error: null });
    await writeBootFile(root, { composite_hash: FP("0"), boot_epoch: 0, captured_at: "2026-01-01T00:00:00.000Z", identity: {} });
    expect(await readBootStatus(root)).toMatchObject({ boot_epoch: 0, os_fingerprint: FP("0"), last_reconstruction: null });
    // A reconstruction killed before its commit point: evidence of epoch 1, the fingerprint file still at 0.
    await writeEvidence(root, evidence(1, "2026-02-01T00:00:00.000Z"));
    expect((await readBootStatus(root)).last_reconstruction).toMatchObject({ outcome: "uncommitted", epoch: 1 });
    // The node came back on its old OS: precheck moves it to epoch/abandoned.
    await abandonUncommittedEvidence(root, 0);
    expect(await readBootStatus(root)).toMatchObject({ boot_epoch: 0, last_reconstruction: { outcome: "abandoned", epoch: 1, at: "2026-02-01T00:00:00.000Z" } });
    // A later reconstruction reaches epoch 1 and commits: it is the last one, whatever the clocks say.
    await writeEvidence(root, evidence(1, "2025-12-31T00:00:00.000Z"));
    await writeBootFile(root, { composite_hash: FP("1"), boot_epoch: 1, captured_at: "2025-12-31T00:00:00.000Z", identity: {} });
    expect(await readBootStatus(root)).toEqual({
      boot_epoch: 1, os_fingerprint: FP("1"), captured_at: "2025-12-31T00:00:00.000Z", error: null,
      last_reconstruction: { outcome: "completed", epoch: 1, at: "2025-12-31T00:00:00.000Z", previous_fingerprint: FP("0"), new_fingerprint: FP("1"), runtime_manifest_digest: `sha256:${"e".repeat(64)}` },
    });
  });

  it("a malformed fingerprint file is reported as an error, never thrown (status keeps answering)", async () => {
    const p = stateRootPaths(root).osFingerprint;
    await mkdir(dirname(p), { recursive: true });
    await writeFile(p, "{not json");
    const s = await readBootStatus(root);
    expect(s.boot_epoch).toBeNull();
    expect(s.error).toContain("os_fingerprint.json");
  });

  it("metrics: edged_boot_epoch{os_fingerprint} (no sample before the first precheck), the last reconstruction's time by outcome, unreadable files", async () => {
    const registry = new Registry();
    registerBootMetrics(registry, () => root);
    let body = await registry.metrics();
    expect(body).not.toMatch(/^edged_boot_epoch\{/m);
    expect(body).not.toMatch(/^edged_boot_last_reconstruction_timestamp_seconds\{/m);
    expect(body).toMatch(/^edged_boot_state_unreadable 0$/m);
    await writeBootFile(root, { composite_hash: FP("3"), boot_epoch: 3, captured_at: "2026-03-01T00:00:00.000Z", identity: {} });
    await writeEvidence(root, evidence(3, "2026-03-01T00:00:00.000Z"));
    body = await registry.metrics();
    expect(body).toMatch(new RegExp(`^edged_boot_epoch\\{os_fingerprint="${FP("3")}"\\} 3$`, "m"));
    expect(body).toMatch(new RegExp(`^edged_boot_last_reconstruction_timestamp_seconds\\{outcome="completed"\\} ${Date.parse("2026-03-01T00:00:00.000Z") / 1000}$`, "m"));
    await writeFile(stateRootPaths(root).osFingerprint, "[]");
    body = await registry.metrics();
    expect(body).toMatch(/^edged_boot_state_unreadable 1$/m);
    expect(body).not.toMatch(/^edged_boot_epoch\{/m);
  });
});
