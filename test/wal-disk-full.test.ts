/**
 * A full disk, for real: the WAL on a 256 KiB tmpfs. Appends run until the
 * kernel says ENOSPC; the failing append is rejected with WAL_DISK_FULL;
 * every acknowledged entry is still there after reopening; once a consumer
 * has confirmed them, reclamation frees whole segments and appends resume.
 * Needs root (mount); skipped with the reason otherwise.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Wal, WalError, readCommitted } from "../src/telemetry/index.js";
import type { WalLogger } from "../src/telemetry/index.js";

const isRoot = process.getuid?.() === 0;
const quiet: WalLogger = { warn: () => undefined, error: () => undefined };
let root = "";
let mounted = false;

beforeAll(async () => {
  if (!isRoot) return;
  root = await mkdtemp(join(tmpdir(), "wal-enospc-"));
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", root], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`mount tmpfs failed: ${r.stderr}`);
  mounted = true;
});

afterAll(async () => {
  if (mounted) spawnSync("umount", [root]);
  if (root) await rm(root, { recursive: true, force: true });
});

describe.skipIf(!isRoot)("WAL on a full disk (256 KiB tmpfs; needs root)", () => {
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
});
