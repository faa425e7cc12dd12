import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import { replaceFileDurably } from "../../lib/index.js";
import { decodeSafeSeq, encodeSafeSeq } from "./codec.js";
import { WalError, WalFailHard } from "./errors.js";
import type { WalFs } from "./fs.js";
import type { WalLogger } from "./logger.js";
import { defaultOtherState, walPaths } from "./paths.js";
import { removeStaleTemp } from "./stale-temp.js";
import { scanFrames, structuralBytes } from "./scan.js";
import type { SafePoint, ScanResult } from "./scan.js";
import { UPGRADING, generationPath, legacyRangeOf, newGenerationId, readGeneration, writeGeneration } from "./generation.js";
import type { Generation, LegacyRange } from "./generation.js";
import { BASE_TMP_FILE, hasSegmentState, readSegmentLayout, segmentDigestMatches } from "./segments.js";
import type { Segment, SegmentLayout } from "./segments.js";

export const LEGACY_UPGRADE_ENV = "AUTONOMYOPS_WAL_LEGACY_UPGRADE";
export const OPERATOR_RESET_ENV = "AUTONOMYOPS_WAL_OPERATOR_RESET";

export interface RecoverOptions {
  dir: string;
  fs: WalFs;
  log: WalLogger;
  env: Readonly<Record<string, string | undefined>>;
  /** Extra steady-state evidence (WS-4); added to the defaults of paths.ts. */
  otherState?: readonly string[];
}

export interface Recovered {
  /** The active segment (telemetry.wal). */
  scan: ScanResult;
  /** Reclaimed prefix and the sealed segments before the active one (none in the seed's layout). */
  segments: { base: number; retained: Segment[] };
  /** SHA-256 state over the active segment's kept bytes, hashed from what recovery read (the Wal continues it; a seal names its digest). */
  activeDigest: Hash;
  /** The WAL generation (docs/wal.md "Generations"): new on a first run and an operator reset. */
  generation: Generation;
  /** How the safe point was established: read, first run, legacy upgrade or operator reset. */
  mode: "safe_seq" | "first_run" | "legacy_upgrade" | "operator_reset";
}

/**
 * Recovery (seed 001 §3.3–§3.5): read the safe point, decide first run vs
 * steady state, scan, truncate to the safe point, make the result durable.
 * Every fail-hard is logged once as WAL_RECOVERY_FAIL_HARD with cause and dir.
 */
export async function recover(opts: RecoverOptions): Promise<Recovered> {
  try {
    return await recoverUnlogged(opts);
  } catch (e) {
    if (e instanceof WalFailHard) opts.log.error({ cause: e.code, dir: opts.dir, ...e.details }, "WAL_RECOVERY_FAIL_HARD");
    throw e;
  }
}

async function recoverUnlogged(opts: RecoverOptions): Promise<Recovered> {
  const { fs, dir } = opts;
  const p = walPaths(dir);
  await mkdirDurable(fs, dir);
  const layout = await readSegmentLayout(fs, dir);
  await finishReclamation(fs, dir, layout);
  const data = (await fs.readFile(p.wal)) ?? new Uint8Array(0);
  const established = await establishSafePoint(opts, data);
  const generation = await generationFor(fs, dir, established.mode);
  // OBS-4: a legacy upgrade accepts gaps anywhere; later openings exactly the gaps that upgrade recorded.
  const legacy = established.mode === "legacy_upgrade" ? UPGRADING : legacyRangeOf(generation);
  await checkSealed(fs, dir, layout, established.safe, legacy);
  const scan = scanFrames(data, established.safe, dir, layout.activeFirst, legacy);
  if (established.mode === "legacy_upgrade") {
    // OBS-4: every complete legacy frame is committed, gaps included; each gap is logged at WARNING and
    // recorded beside the directory, so later openings (without the variable) accept the same gaps.
    for (const g of scan.gaps) opts.log.warn({ dir, after: g.after, seq: g.seq }, `WAL_LEGACY_GAP: legacy frame seq ${g.seq} follows ${g.after}; accepted as committed (seed OBS-4)`);
    generation.legacyThrough = scan.maxSeq;
    generation.legacyGaps = scan.gaps;
  }
  // Make what recovery decided durable before anyone reads it: the WAL file (created if
  // missing, truncated to the safe point) and the directory (its entry, and a safe_seq
  // rename a killed writer may have left un-fsynced). Otherwise a reader could be shown
  // an entry that a power cut after recovery takes back.
  const f = await fs.openFile(p.wal);
  try {
    if (scan.truncateTo !== data.byteLength) await f.truncate(scan.truncateTo);
    await f.sync();
  } finally {
    await f.close();
  }
  await fs.fsyncDir(dir);
  // A new generation (first run, operator reset) or a legacy upgrade's record is durable
  // BEFORE the safe point that makes the WAL steady: a crash in between repeats the same
  // decision on the next open instead of leaving a steady WAL without its generation.
  // telemetry.pos is never touched (S11): a position of another generation is simply not
  // followed by the exporter or by reclamation.
  if (established.mode !== "safe_seq") await writeGeneration(fs, dir, generation);
  if (established.mode === "safe_seq") {
    // WS-3, as the seed states it: proactive removal of a stale temp at open happens only
    // when the canonical safe_seq exists. Without one, recovery never deletes it.
    await removeStaleTemp(fs, p.safeSeq, p.safeSeqTmp);
  } else {
    // Every other mode records its safe point at once. For a legacy upgrade that is the
    // migration itself; for a first run (or an operator reset) it is a genesis safe point 0:
    // from now on a missing safe_seq is detected even before the first append, which matters
    // because a node writes other state (policy, activation) before the runtime appends anything.
    // Like every safe-point write it goes through the temp (§3.5: write, fsync, rename, fsync
    // dir), overwriting a stale one: that is the seed's write path, not a WS-3 cleanup.
    await writeSafeSeq(fs, dir, scan.maxSeq);
  }
  // Same for a reclamation killed before its base rename: the old base (or none) stands.
  if (await fs.exists(join(dir, BASE_TMP_FILE))) await fs.unlink(join(dir, BASE_TMP_FILE)).catch(() => undefined);
  const activeDigest = createHash("sha256").update(data.subarray(0, scan.truncateTo));
  return { scan, mode: established.mode, generation, segments: { base: layout.base, retained: layout.retained }, activeDigest };
}

/**
 * First run and operator reset start a new generation. A legacy upgrade keeps the
 * legacy generation (all zeros) only when no generation record exists — the WAL
 * truly predates generations, and its 8-byte telemetry.pos belongs to it. If a
 * record exists, this WAL lost its safe point after generations existed: seqs may
 * restart under an older position, so the upgrade starts a fresh generation and
 * every older position is ignored (re-export is at-least-once; loss is not allowed).
 */
async function generationFor(fs: WalFs, dir: string, mode: Recovered["mode"]): Promise<Generation> {
  if (mode === "first_run" || mode === "operator_reset") return { id: newGenerationId() };
  if (mode === "legacy_upgrade" && (await fs.exists(generationPath(dir)))) return { id: newGenerationId() };
  return readGeneration(fs, dir);
}

/** A crash between writing base and unlinking the segments it covers leaves them behind; delete them now. */
async function finishReclamation(fs: WalFs, dir: string, layout: SegmentLayout): Promise<void> {
  if (layout.stale.length === 0) return;
  for (const s of layout.stale) await fs.unlink(s.path);
  await fs.fsyncDir(dir);
}

/**
 * Sealed segments lie wholly inside the committed range (a segment is sealed
 * only after the safe point covers its last frame), so each must hold exactly
 * the frames its name says, all valid: any defect is lost or changed committed
 * data. Read one segment at a time.
 */
async function checkSealed(fs: WalFs, dir: string, layout: SegmentLayout, safe: SafePoint, legacy: LegacyRange): Promise<void> {
  const sealedEnd = layout.activeFirst - 1;
  if (safe.kind === "safe" && safe.seq < sealedEnd && layout.retained.length > 0) {
    throw new WalFailHard("SEGMENT_INVALID", dir, `sealed segments reach seq ${sealedEnd}, beyond safe_seq=${safe.seq}`, { safe_seq: safe.seq, sealed_end: sealedEnd });
  }
  if (safe.kind === "safe" && safe.seq < layout.base) {
    throw new WalFailHard("SEGMENT_INVALID", dir, `safe_seq=${safe.seq} is below the reclaimed base ${layout.base}`, { safe_seq: safe.seq, base: layout.base });
  }
  for (const s of layout.retained) {
    const bytes = (await fs.readFile(s.path)) ?? new Uint8Array(0);
    // The seed's own causes first (corrupt JSON as itself, WS-2), then the shape, then the digest: it catches what still parses.
    const r = scanFrames(bytes, { kind: "legacy" }, dir, s.first, legacy);
    if (r.validBytes !== bytes.byteLength || r.maxSeq !== s.last) {
      throw new WalFailHard("SEGMENT_INVALID", dir, `${s.name} holds seqs ${s.first}..${r.maxSeq} in ${r.validBytes} of ${bytes.byteLength} bytes`, { segment: s.name, max_seq: r.maxSeq, valid_bytes: r.validBytes, bytes: bytes.byteLength });
    }
    if (!segmentDigestMatches(s, bytes)) {
      throw new WalFailHard("SEGMENT_INVALID", dir, `${s.name}: its bytes no longer match the SHA-256 recorded when it was sealed`, { segment: s.name });
    }
  }
}

async function establishSafePoint(opts: RecoverOptions, data: Uint8Array): Promise<{ safe: SafePoint; mode: Recovered["mode"] }> {
  const { fs, dir, log, env } = opts;
  const p = walPaths(dir);
  const raw = await fs.readFile(p.safeSeq);
  if (raw !== undefined) {
    const seq = decodeSafeSeq(raw);
    if (seq === undefined) throw new WalFailHard("SAFESEQ_CORRUPT", dir, `telemetry.safe_seq is ${raw.byteLength} bytes, not 8`, { length: raw.byteLength });
    return { safe: { kind: "safe", seq }, mode: "safe_seq" };
  }
  const walBytes = structuralBytes(data);
  const steady = walBytes > 0 || (await hasSegmentState(fs, dir)) || (await anyExists(fs, [...defaultOtherState(dir), ...(opts.otherState ?? [])]));
  if (!steady) return { safe: { kind: "safe", seq: 0 }, mode: "first_run" };
  if (env[LEGACY_UPGRADE_ENV] === "1" && env[OPERATOR_RESET_ENV] === "1") {
    // Opposite decisions (keep every frame vs. start over): never let one silently win.
    throw new WalError("WAL_OVERRIDE_AMBIGUOUS", `both ${LEGACY_UPGRADE_ENV}=1 and ${OPERATOR_RESET_ENV}=1 are set for the WAL in ${dir}; they ask for opposite recoveries`,
      `set exactly one: ${LEGACY_UPGRADE_ENV}=1 keeps every complete legacy frame, ${OPERATOR_RESET_ENV}=1 starts an empty WAL over at seq 1`, { details: { dir } });
  }
  if (env[LEGACY_UPGRADE_ENV] === "1") {
    log.warn({ dir, hint: `unset ${LEGACY_UPGRADE_ENV} once the WAL has been upgraded` }, "WAL_LEGACY_UPGRADE: safe_seq missing in steady state; treating every complete frame as committed");
    return { safe: { kind: "legacy" }, mode: "legacy_upgrade" };
  }
  if (env[OPERATOR_RESET_ENV] === "1" && walBytes === 0) {
    log.warn({ dir, activation_invariants: "the node's activation and policy state are untouched; only telemetry restarts at seq 1" }, "WAL_RESET_BY_OPERATOR");
    return { safe: { kind: "safe", seq: 0 }, mode: "operator_reset" };
  }
  throw new WalFailHard("SAFESEQ_MISSING", dir, "telemetry.safe_seq is missing but the node has state (steady state)", { wal_bytes: walBytes });
}

/** mkdir -p whose every new directory entry is fsynced into its parent (a new WAL directory must survive power loss too). */
async function mkdirDurable(fs: WalFs, dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = resolve(dir); !(await fs.exists(d)); d = dirname(d)) {
    missing.unshift(d);
    if (dirname(d) === d) break;
  }
  if (missing.length === 0) return;
  await fs.mkdirp(dir);
  for (const d of missing) await fs.fsyncDir(dirname(d));
}

async function anyExists(fs: WalFs, paths: readonly string[]): Promise<boolean> {
  for (const path of paths) if (await fs.exists(path)) return true;
  return false;
}

/** §3.5: temp → write → fsync → rename → fsync(dir). Temp and target in the same directory. */
export async function writeSafeSeq(fs: WalFs, dir: string, seq: number): Promise<void> {
  const p = walPaths(dir);
  await replaceFileDurably(p.safeSeq, p.safeSeqTmp, encodeSafeSeq(seq), fs);
}
