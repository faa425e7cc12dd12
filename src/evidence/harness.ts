import { copyFile, mkdir, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { Wal, WalFailHard, decodeSafeSeq, encodeFrame, inspectWal, nodeWalFs, walPaths } from "../telemetry/index.js";
import type { VerifyInvariant, WalFailHardCause } from "../telemetry/index.js";
import { seededRng } from "../lib/index.js";
import type { Rng } from "../lib/index.js";
import type { ReportIteration, ReportViolation } from "./report.js";
import { elapsed } from "./log.js";
import type { CellLog } from "./log.js";

/** Largest seed accepted: any non-negative safe integer (recorded in wal_verify.json as a JSON number). */
export const MAX_SEED = Number.MAX_SAFE_INTEGER;

/** 32-bit avalanche mix (murmur3 finaliser). */
function mix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The PRNG of iteration `i` under `seed`: an independent stream per iteration,
 * so a run replays exactly from its seed and one iteration does not depend on
 * the ones before it. mulberry32 (the project's seeded PRNG) over a mix of the
 * seed's two 32-bit halves and the iteration number.
 */
export function iterationRng(seed: number, i: number): Rng {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 2 ** 32) >>> 0;
  return seededRng(mix32(mix32(lo ^ mix32(hi + 0x9e3779b9)) + Math.imul(i + 1, 0x9e3779b1)));
}

const int = (rng: Rng, n: number): number => Math.floor(rng() * n);

/** Events of varied size with multi-byte UTF-8, so byte and character lengths differ. */
function makeEvent(rng: Rng, fields: Record<string, number | string | boolean>): Record<string, unknown> {
  const alphabet = ["a", "b", "z", "é", "→", "😀", " ", "\"", "\\", "\n"];
  let pad = "";
  for (let k = int(rng, 140); k > 0; k--) pad += alphabet[int(rng, alphabet.length)] ?? "a";
  return { ...fields, pad, nested: { n: int(rng, 1000) } };
}

export interface HarnessIteration extends ReportIteration {
  /** N: acknowledged entries written before the crash window. */
  entries: number;
  /** Complete phantom frames injected after the last acknowledged one (the S3 window). */
  phantoms: number;
  /** Whether a torn partial frame followed the phantoms. */
  torn_tail: boolean;
  /** Phantoms recovery reported discarding. */
  discarded: number | null;
  /** telemetry.safe_seq on disk after recovery. */
  safe_seq_on_disk: number | null;
  ms: number;
  violations: ReportViolation[];
}

export interface HarnessResult {
  iterations: HarnessIteration[];
  /** Invariants an iteration's recovered image violated (folded into the report's invariants block). */
  invariantFailures: Partial<Record<VerifyInvariant, string>>;
  failHard: WalFailHardCause[];
  acknowledged: number;
  phantomsInjected: number;
  ms: number;
}

/**
 * Step 2 of seed 002, the randomized crash harness, on the cell's real file
 * system. Iteration i: write N ∈ [1,10] acknowledged entries (each append
 * writes its frame and telemetry.safe_seq), inject phantom frames straight into
 * telemetry.wal — the S3 window: frames fsynced, safe point not advanced —
 * sometimes followed by a torn frame, reopen (recovery), then assert:
 * ReadFrom(0) is exactly the N entries with seqs 1..N in order and their
 * content (R2/R5, R1/R3), the on-disk safe_seq is N (S1), the recovered image
 * passes the read-only verifier (R1–R5, no JSON corruption), and the next
 * append is N+1. A failing iteration's WAL files are kept under `preserveDir`.
 */
export async function runCrashHarness(o: { workDir: string; seed: number; iterations: number; log: CellLog; preserveDir: string }): Promise<HarnessResult> {
  const started = performance.now();
  const results: HarnessIteration[] = [];
  const invariantFailures: Partial<Record<VerifyInvariant, string>> = {};
  const failHard: WalFailHardCause[] = [];
  let acknowledged = 0;
  let phantomsInjected = 0;
  for (let i = 0; i < o.iterations; i++) {
    const t0 = performance.now();
    const rng = iterationRng(o.seed, i);
    const dir = join(o.workDir, `iteration-${i}`);
    const walLog = o.log.walLogger(() => `iteration ${i}`);
    const violations: ReportViolation[] = [];
    const v = (code: string, msg: string, extra: Record<string, unknown> = {}): void => void violations.push({ code, msg: `iteration ${i}: ${msg}`, iteration: i, step: "crash_harness", ...extra });
    const n = 1 + int(rng, 10);
    const events: Record<string, unknown>[] = [];
    let phantoms = 0;
    let tornTail = false;
    let discarded: number | null = null;
    let safeOnDisk: number | null = null;
    try {
      const wal = await Wal.open(dir, { log: walLog, env: {} });
      try {
        for (let k = 1; k <= n; k++) {
          const e = makeEvent(rng, { iteration: i, k });
          const seq = await wal.append(e);
          if (seq !== k) v("ACK_SEQ_MISMATCH", `append ${k} acknowledged as seq ${seq}`);
          events.push(e);
          acknowledged++;
        }
      } finally {
        await wal.close();
      }

      // The S3 crash window: frames reached the WAL and its fsync; writeSafeSeq never ran.
      phantoms = 1 + (rng() < 0.25 ? int(rng, 3) : 0);
      const chunks: Uint8Array[] = [];
      for (let j = 1; j <= phantoms; j++) chunks.push(encodeFrame({ seq: n + j, event: { phantom: true, iteration: i, j } }));
      tornTail = rng() < 0.3;
      if (tornTail) {
        const f = encodeFrame({ seq: n + phantoms + 1, event: makeEvent(rng, { torn: true }) });
        chunks.push(f.subarray(0, 1 + int(rng, f.byteLength - 1)));
      }
      const fh = await open(walPaths(dir).wal, "a");
      try {
        await fh.write(Buffer.concat(chunks));
        await fh.sync();
      } finally {
        await fh.close();
      }
      phantomsInjected += phantoms;

      let reopened: Wal | undefined;
      try {
        reopened = await Wal.open(dir, { log: walLog, env: {} });
      } catch (e) {
        if (e instanceof WalFailHard) {
          failHard.push(e.code);
          v(e.code, `reopen failed hard: ${e.message}`, { fail_hard: true });
        } else v("REOPEN_FAILED", `reopen failed: ${e instanceof Error ? e.message : String(e)}`);
      }
      if (reopened) {
        try {
          discarded = reopened.recovered.scan.phantoms;
          const got = await reopened.readFrom(0);
          if (got.length > n) v("PHANTOM_BEYOND_SAFESEQ", `ReadFrom(0) returned ${got.length} entries, want exactly ${n}`, { invariant: "R5_NO_PHANTOMS" });
          if (got.length < n) v("ACKED_ENTRY_LOST", `ReadFrom(0) returned ${got.length} entries, want exactly ${n}`);
          const seqs = got.map((e) => e.seq);
          if (seqs.length > 0 && seqs[0] !== 1) v("FIRST_SEQ_NOT_ONE", `first entry has seq ${seqs[0]}`, { invariant: "R1_FIRST_SEQ_IS_ONE" });
          const bad = seqs.findIndex((s, idx) => idx > 0 && s !== (seqs[idx - 1] ?? 0) + 1);
          if (bad > 0) v("SEQ_GAP", `seq ${seqs[bad]} follows ${seqs[bad - 1]}`, { invariant: "R2_SEQ_CONTIGUOUS" });
          got.forEach((entry, idx) => {
            if (idx < n && JSON.stringify(entry.event) !== JSON.stringify(events[idx])) v("ENTRY_CONTENT_MISMATCH", `entry ${entry.seq} reads back different content`);
          });
          if (discarded !== phantoms) v("PHANTOM_COUNT_MISMATCH", `recovery discarded ${discarded} phantom frame(s), ${phantoms} were injected`);
          const p = walPaths(dir);
          const safeRaw = await nodeWalFs.readFile(p.safeSeq);
          safeOnDisk = safeRaw === undefined ? null : (decodeSafeSeq(safeRaw) ?? null);
          if (safeOnDisk !== n) v("SAFESEQ_MISMATCH", `on-disk safe_seq=${String(safeOnDisk)} after recovery, want ${n} (S1)`);
          // The recovered image, through the independent read-only verifier: exactly frames 1..N.
          const inspection = inspectWal((await nodeWalFs.readFile(p.wal)) ?? new Uint8Array(0), safeRaw);
          for (const x of inspection.violations) {
            v(x.code, x.msg, { invariant: x.invariant });
            invariantFailures[x.invariant] ??= `iteration ${i} (recovered image): ${x.msg}`;
          }
          if (inspection.fail_hard) failHard.push(inspection.fail_hard);
          const next = await reopened.append({ after: "reopen", iteration: i });
          if (next !== n + 1) v("APPEND_AFTER_REOPEN", `append after reopen got seq ${next}, want ${n + 1}`);
        } finally {
          await reopened.close();
        }
      }
    } catch (e) {
      if (e instanceof WalFailHard) failHard.push(e.code);
      v(e instanceof WalFailHard ? e.code : "HARNESS_ERROR", `unexpected error: ${e instanceof Error ? e.message : String(e)}`);
    }
    for (const r of walLog.records) v("UNEXPECTED_WAL_LOG", `WAL logged ${r.level} ${r.msg} ${JSON.stringify(r.obj)}`);
    const pass = violations.length === 0;
    const it: HarnessIteration = { iteration: i, entries: n, phantoms, torn_tail: tornTail, pass, discarded, safe_seq_on_disk: safeOnDisk, ms: elapsed(t0), violations };
    results.push(it);
    o.log.line(`  iteration ${i}: N=${n} phantoms=${phantoms} torn_tail=${tornTail} -> ${pass ? "PASS" : `FAIL ${violations.map((x) => x.code).join(",")}`} (${it.ms} ms)`);
    for (const x of violations) o.log.line(`    ${x.code}: ${x.msg}`);
    if (!pass) await preserve(dir, join(o.preserveDir, `iteration-${i}`), o.log);
    await rm(dir, { recursive: true, force: true });
  }
  return { iterations: results, invariantFailures, failHard, acknowledged, phantomsInjected, ms: elapsed(started) };
}

/** Copies a WAL directory's files (not its lock) into the evidence, for analysis. */
export async function preserve(dir: string, to: string, log: CellLog): Promise<void> {
  const p = walPaths(dir);
  await mkdir(to, { recursive: true });
  for (const f of [p.wal, p.safeSeq, p.safeSeqTmp]) {
    await copyFile(f, join(to, f.slice(dir.length + 1))).catch(() => undefined);
  }
  log.line(`    preserved ${dir} -> ${to}`);
}
