/**
 * A full disk, for real: the WAL on a 256 KiB tmpfs. Appends run until the
 * kernel says ENOSPC; the failing append is rejected with WAL_DISK_FULL;
 * every acknowledged entry is still there after reopening; once a consumer
 * has confirmed them, reclamation frees whole segments and appends resume.
 * And a whole runtime on a full disk: with decision_log durable an allow it
 * cannot record is denied (no record, no action), and once space is back the
 * WAL reopens by itself and calls are allowed again, without a restart.
 * Needs root (mount): fails naming it otherwise, unless AUTONOMY_TEST_SKIP=root.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, open as openFile, rm, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Wal, WalError, readCommitted } from "../../src/telemetry/index.js";
import { buildBundle } from "../../src/policy/index.js";
import { loadPolicy } from "../../src/node/index.js";
import { DEFAULT_RUNTIME_CONFIG, startRuntime } from "../../src/runtime/index.js";
import { needs } from "../helpers/needs.js";
import { EXAMPLE_POLICY_DIR } from "../helpers/policies.js";
import { bearerFor } from "../helpers/tool-server.js";
import type { WalLogger } from "../../src/telemetry/index.js";

const privileged = needs("root", "util-linux");
const quiet: WalLogger = { warn: () => undefined, error: () => undefined };
let root = "";
let mounted = false;

beforeAll(async () => {
  privileged.check();
  root = await mkdtemp(join(tmpdir(), "wal-enospc-"));
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", root], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`mount tmpfs failed: ${r.stderr}`);
  mounted = true;
});

afterAll(async () => {
  if (mounted) spawnSync("umount", [root]);
  if (root) await rm(root, { recursive: true, force: true });
});

privileged.describe("WAL on a full disk (256 KiB tmpfs; needs root)", () => {
  it("ENOSPC rejects the append with WAL_DISK_FULL, loses nothing acknowledged, and reclamation frees space", async () => {
    const dir = join(root, "telemetry");
    const wal = await Wal.open(dir, { log: quiet, segmentBytes: 32 * 1024 });
    const acked: number[] = [];
    let failure: unknown;
    for (let k = 1; k < 10_000 && failure === undefined; k++) {
      try {
        acked.push(await wal.append({ k, pad: "z".repeat(1000) }));
      } catch (e) {
        failure = e;
      }
    }
    expect(failure).toBeInstanceOf(WalError);
    expect((failure as WalError).code).toBe("WAL_DISK_FULL");
    expect(acked.length).toBeGreaterThan(100);
    await wal.close();

    // Nothing acknowledged is lost: a read-only reader and a reopened WAL see exactly 1..N.
    const { entries, inspection } = await readCommitted(dir);
    expect(inspection.fail_hard).toBeNull();
    expect(entries.map((e) => e.seq)).toEqual(acked);
    const last = acked[acked.length - 1] ?? 0;

    // The consumer confirmed everything: reopening reclaims the sealed segments and appends resume.
    const again = await Wal.open(dir, { log: quiet, segmentBytes: 32 * 1024, confirmed: () => Promise.resolve(last) });
    expect(again.base).toBeGreaterThan(0);
    expect(again.lastSeq).toBe(last);
    for (let k = 1; k <= 50; k++) expect(await again.append({ after: k, pad: "z".repeat(1000) })).toBe(last + k);
    await again.close();
  });

  it("a runtime denies what it cannot record while the disk is full, and recovers by itself once space is back", async () => {
    const stateRoot = join(root, "node");
    (await loadPolicy(stateRoot, (await buildBundle(EXAMPLE_POLICY_DIR, { name: "demo", version: "1.0.0" })).bytes)).loaded.engine.dispose();
    const bearer = await bearerFor(stateRoot, "agent");
    const rt = await startRuntime({ stateRoot, config: { ...DEFAULT_RUNTIME_CONFIG, node: {}, upstreams: [], telemetry: {} }, listen: { host: "127.0.0.1", port: 0 } });
    const ballast = join(root, "ballast");
    try {
      const echo = async (): Promise<{ decision: string; reason?: string }> =>
        (await (await fetch(`${rt.url ?? ""}/v1/tool`, { method: "POST", headers: { "content-type": "application/json", ...bearer }, body: JSON.stringify({ kind: "tool.echo", params: { text: "x" } }) })).json()) as { decision: string; reason?: string };
      expect((await echo()).decision).toBe("allow");
      // Fill what is left of the 256 KiB file system.
      const fh = await openFile(ballast, "w");
      try {
        for (;;) await fh.write(Buffer.alloc(4096, 1));
      } catch {
        // ENOSPC: the disk is full
      } finally {
        await fh.close();
      }
      let refused: { decision: string; reason?: string } | undefined;
      for (let i = 0; i < 50 && !refused; i++) {
        const r = await echo();
        if (r.decision === "deny") refused = r;
      }
      expect(refused?.reason).toMatch(/could not be recorded durably/);
      const status = (await (await fetch(`${rt.url ?? ""}/v1/status`, { headers: bearer })).json()) as { telemetry: { wal: { decision_log_failures: number } } };
      expect(status.telemetry.wal.decision_log_failures).toBeGreaterThan(0);
      await unlink(ballast); // space is back (as after the exporter caught up and reclaimed)
      const end = Date.now() + 20_000;
      let again = await echo();
      while (again.decision !== "allow" && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 200));
        again = await echo();
      }
      expect(again.decision).toBe("allow");
      const after = (await (await fetch(`${rt.url ?? ""}/v1/status`, { headers: bearer })).json()) as { telemetry: { wal: { reopens: number; state: string } } };
      expect(after.telemetry.wal).toMatchObject({ state: "ok" });
      expect(after.telemetry.wal.reopens).toBeGreaterThanOrEqual(1);
    } finally {
      await rt.close();
      await unlink(ballast).catch(() => undefined);
    }
  }, 60_000);
});
