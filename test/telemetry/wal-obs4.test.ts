/**
 * Seed OBS-4 end to end: a legacy WAL with gaps is upgraded once
 * (AUTONOMYOPS_WAL_LEGACY_UPGRADE=1) and from then on every reader takes the
 * gaps the upgrade accepted — across seals into segments, reopenings without
 * the variable, the exporter's streaming reader, `inspect` and the independent
 * scripts/wal_verify.py — while a gap outside the accepted range still fails.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { INDEPENDENT_VERIFIER, compare as compareVerdicts } from "../../src/evidence/independent.js";
import { Exporter, Wal, WalFileReader, encodeFrame, inspectWalDir, readCommitted, readPos, walPaths } from "../../src/telemetry/index.js";
import { ControlPlaneEventsSink } from "../../src/telemetry/exporter/sinks.js";
import { startControlPlaneEventsContractServer } from "../helpers/exporter-receivers.js";
import { needs } from "../helpers/needs.js";

const quiet = { warn: () => undefined, error: () => undefined };
let root = "";
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "wal-obs4-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const LEGACY = [1, 2, 5, 6, 9, 10, 11, 20];

async function upgradedDir(name: string, segmentBytes: number): Promise<{ dir: string; seqs: number[] }> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  await writeFile(walPaths(dir).wal, Buffer.concat(LEGACY.map((seq) => Buffer.from(encodeFrame({ seq, event: { legacy: seq, pad: "p".repeat(40) } })))));
  const up = await Wal.open(dir, { log: quiet, env: { AUTONOMYOPS_WAL_LEGACY_UPGRADE: "1" }, segmentBytes });
  for (let k = 0; k < 12; k++) await up.append({ after: k, pad: "p".repeat(40) });
  await up.close();
  return { dir, seqs: [...LEGACY, ...Array.from({ length: 12 }, (_, k) => 21 + k)] };
}

function verifyPy(dir: string): Record<string, unknown> {
  try {
    return JSON.parse(execFileSync(process.env.AUTONOMY_PYTHON ?? "python3", [INDEPENDENT_VERIFIER, "--dir", dir], { encoding: "utf8" })) as Record<string, unknown>;
  } catch (e) {
    return JSON.parse((e as { stdout?: string }).stdout ?? "{}") as Record<string, unknown>;
  }
}

needs("python3").describe("OBS-4: an upgraded gapped legacy WAL, after the upgrade", () => {
  it.each([["seed-exact", 0], ["sealed through the legacy range", 200]] as const)("%s: reopens without the variable and every reader returns exactly the accepted frames", async (name, segmentBytes) => {
    const { dir, seqs } = await upgradedDir(name.replace(/\W+/g, "-"), segmentBytes);
    const wal = await Wal.open(dir, { log: quiet, segmentBytes });
    if (segmentBytes > 0) expect(wal.sealedSegments.length).toBeGreaterThan(1);
    expect((await wal.readFrom(1)).map((e) => e.seq)).toEqual(seqs);
    expect((await wal.readFrom(7)).map((e) => e.seq)).toEqual(seqs.filter((s) => s >= 7));
    await wal.close();

    const reader = new WalFileReader(dir, { stride: 2 });
    const streamed: number[] = [];
    for await (const page of reader.scan(1, await reader.committed())) streamed.push(...page.map((e) => e.seq));
    expect(streamed).toEqual(seqs);
    const from7: number[] = [];
    for await (const page of reader.scan(7, 10)) from7.push(...page.map((e) => e.seq));
    expect(from7).toEqual([9, 10]);

    const ours = await inspectWalDir(dir);
    expect(ours.violations).toEqual([]);
    expect((await readCommitted(dir)).entries.map((e) => e.seq)).toEqual(seqs);
    expect(compareVerdicts(ours, verifyPy(dir))).toEqual([]);
  });

  it("the exporter delivers exactly the accepted frames and its position passes the gaps (so it is not stuck before the first one)", async () => {
    const { dir, seqs } = await upgradedDir("export", 200);
    const cp = await startControlPlaneEventsContractServer();
    try {
      const x = new Exporter({ wal: dir, sink: new ControlPlaneEventsSink({ url: cp.url, timeoutMs: 5_000 }), nodeId: "n", log: { ...quiet, info: () => undefined }, batchSize: 5 });
      expect(await x.drainOnce()).toMatchObject({ caughtUp: true, pos: seqs.at(-1) });
      await x.close();
      expect(cp.stored.map((e) => Number(e.event_id.split(":").at(-1))).sort((a, b) => a - b)).toEqual(seqs);
      expect(await readPos(dir)).toMatchObject({ kind: "ok", pos: seqs.at(-1) });
    } finally {
      await cp.close();
    }
  });

  it("inside the accepted range only the recorded gaps pass: a frame lost since the upgrade is SEQ_GAP for every reader", async () => {
    const dir = join(root, "lost-after-upgrade");
    await mkdir(dir, { recursive: true });
    const frames = (seqs: number[]): Buffer => Buffer.concat(seqs.map((seq) => Buffer.from(encodeFrame({ seq, event: { legacy: seq } }))));
    await writeFile(walPaths(dir).wal, frames([1, 2, 3, 5]));
    const up = await Wal.open(dir, { log: quiet, env: { AUTONOMYOPS_WAL_LEGACY_UPGRADE: "1" }, segmentBytes: 0 });
    await up.close();
    // Frame 2 disappears behind the WAL's back: 1 → 3 is not the gap the upgrade recorded (3 → 5).
    await writeFile(walPaths(dir).wal, frames([1, 3, 5]));
    const ours = await inspectWalDir(dir);
    expect(ours.fail_hard).toBe("SEQ_GAP");
    expect(compareVerdicts(ours, verifyPy(dir))).toEqual([]);
    expect(verifyPy(dir)).toMatchObject({ fail_hard: "SEQ_GAP" });
    const reader = new WalFileReader(dir);
    const scanned = async (): Promise<void> => {
      for await (const page of reader.scan(1, 5)) void page;
    };
    await expect(scanned()).rejects.toMatchObject({ code: "SEQ_GAP" });
    expect((await readCommitted(dir)).inspection.fail_hard).toBe("SEQ_GAP");
    await expect(Wal.open(dir, { log: quiet, segmentBytes: 0 })).rejects.toMatchObject({ code: "SEQ_GAP" });
  });

  it("a gap after the accepted range is still a violation for every reader", async () => {
    const { dir } = await upgradedDir("later-gap", 0);
    const wal = await Wal.open(dir, { log: quiet, segmentBytes: 0 });
    await wal.close();
    // Append a frame that skips a seq, and a safe point that covers it, behind the WAL's back.
    const { appendFile } = await import("node:fs/promises");
    await appendFile(walPaths(dir).wal, encodeFrame({ seq: 34, event: { skipped: 33 } }));
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(34n);
    await writeFile(walPaths(dir).safeSeq, b);
    const ours = await inspectWalDir(dir);
    expect(ours.fail_hard).toBe("SEQ_GAP");
    expect(compareVerdicts(ours, verifyPy(dir))).toEqual([]);
    await expect(Wal.open(dir, { log: quiet, segmentBytes: 0 })).rejects.toMatchObject({ code: "SEQ_GAP" });
  });
});
