import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fsyncDir } from "../lib/index.js";
import { Wal, inspectWalDir, nodeWalFs, readCommitted } from "../telemetry/index.js";
import type { WalInspection } from "../telemetry/index.js";
import type { RenameAtomic } from "./report.js";
import { elapsed } from "./log.js";
import type { CellLog } from "./log.js";

export const FIXTURE_ENTRIES = 5;

export interface FixtureResult {
  dir: string;
  inspection: WalInspection;
  /** Entries readCommitted returned (read-only path), and the seqs the Wal API acknowledged. */
  committed: number;
  acknowledged: number[];
  ms: number;
}

/**
 * Step 3 of seed 002, the known-good WAL fixture: 5 entries written through
 * the Wal API (the real append path: frame, fsync, safe point), then verified
 * read-only by inspectWal — the six invariants of wal_verify.json. `tamper`
 * runs between writing and verifying: tests use it to prove a damaged fixture
 * is reported as FAIL with the right violation code.
 */
export async function runFixtureVerify(dir: string, log: CellLog, tamper?: (dir: string) => Promise<void>): Promise<FixtureResult> {
  const t0 = performance.now();
  const walLog = log.walLogger(() => "fixture");
  const wal = await Wal.open(dir, { log: walLog, env: {} });
  const acknowledged: number[] = [];
  try {
    for (let k = 1; k <= FIXTURE_ENTRIES; k++) {
      acknowledged.push(await wal.append({ kind: "ai.policy.decision", fixture: "known-good", k, text: k % 2 === 0 ? "é→😀" : "ascii" }));
    }
  } finally {
    await wal.close();
  }
  if (tamper) {
    log.line("  fixture tampered with before verification (test hook)");
    await tamper(dir);
  }
  const inspection = await inspectWalDir(dir);
  const { entries } = await readCommitted(dir);
  for (const [k, v] of Object.entries(inspection.invariants)) log.line(`  ${v.pass ? "ok  " : "FAIL"} ${k}: ${v.msg}`);
  log.line(`  frames=${inspection.frames.length} safe_seq=${String(inspection.safe_seq)} bytes=${inspection.wal_bytes} fail_hard=${String(inspection.fail_hard)}`);
  return { dir, inspection, committed: entries.length, acknowledged, ms: elapsed(t0) };
}

export interface RenameResult {
  rename_atomic: RenameAtomic;
  msg: string;
  ms: number;
}

/**
 * Step 4 of seed 002, atomic rename: an old `target` exists (as the
 * canonical safe_seq does), a sentinel is written to target.tmp and fsynced,
 * renamed over target, the directory fsynced; target must then hold exactly
 * the sentinel and target.tmp must be gone — the §3.5 safe-point update path.
 */
export async function runRenameCheck(dir: string, log: CellLog): Promise<RenameResult> {
  const t0 = performance.now();
  await mkdir(dir, { recursive: true });
  const target = join(dir, "target");
  const tmp = `${target}.tmp`;
  const sentinel = `autonomy-rename-sentinel ${randomBytes(16).toString("hex")}\n`;
  const problems: string[] = [];
  await writeFile(target, "old\n");
  await fsyncDir(dir);
  // Spelled out rather than lib's replaceFileDurably: this probe checks each step of that
  // sequence on the cell's file system (the temp's inode before the rename, the temp gone after).
  const fh = await open(tmp, "w", 0o600);
  try {
    await fh.writeFile(sentinel);
    await fh.sync();
  } finally {
    await fh.close();
  }
  const inode = (await stat(tmp)).ino;
  await rename(tmp, target);
  await fsyncDir(dir);
  const back = await readFile(target, "utf8");
  if (back !== sentinel) problems.push(`target holds ${JSON.stringify(back.slice(0, 80))}, not the sentinel`);
  if (await nodeWalFs.exists(tmp)) problems.push("target.tmp still exists after the rename");
  if ((await stat(target)).ino !== inode) problems.push("target is not the renamed inode");
  const verdict: RenameAtomic = problems.length === 0 ? "PASS" : "FAIL";
  const msg = problems.length === 0 ? "target.tmp (fsynced) renamed over an existing target; dir fsynced; target holds the sentinel, tmp gone" : problems.join("; ");
  log.line(`  rename_atomic=${verdict}: ${msg}`);
  return { rename_atomic: verdict, msg, ms: elapsed(t0) };
}
