/**
 * Randomized crash harnesses for the telemetry WAL (seed 001 contract, seed 002
 * harness). Seeded: the seed is printed; replay with WAL_HARNESS_SEED=<seed>
 * (and WAL_HARNESS_ONLY=<iteration> to rerun one iteration). Iterations:
 * WAL_HARNESS_ITERATIONS (default 1000). Set WAL_VERIFY_OUT=<file> to write the
 * seed-002 wal_verify.json evidence, WAL_HARNESS_DUMP=<prefix> to write every
 * violation of the PowerLossFs harnesses (with its crash report) as JSON,
 * WAL_HARNESS_METADATA=strict,ordered,any to choose the directory-metadata
 * crash models (default strict,ordered).
 *
 *   1. Seed 002, on the real file system: append N ∈ [1,10] acknowledged
 *      entries, inject phantom frames straight into telemetry.wal (the S3
 *      window: WAL fsynced, safe point not yet advanced), reopen; exactly N
 *      entries 1..N come back, the on-disk safe_seq is N, the phantom bytes are
 *      gone, appends continue at N+1.
 *   2. Power loss, on PowerLossFs: random sequential and group-committed
 *      appends, power cut at a random mutating operation k (sometimes during
 *      recovery itself), crash() with torn unsynced writes and journaled
 *      metadata, reopen, and check: every acknowledged entry is back with its
 *      content, nothing past the recovered safe point is readable, seqs are
 *      contiguous from 1, safe_seq on disk = last seq, appends continue at
 *      last+1, and recovery never fails hard (a crash is not corruption).
 *      Injected EIO/ENOSPC sessions check the error paths.
 *   3. Process death, then power loss: SIGKILL at operation k (the kernel keeps
 *      its page cache), reopen, read, then lose power. Whatever a reader was
 *      shown must still be there.
 *
 * The on-disk state is checked twice: through the WAL API and by an
 * independent frame parser below (R1–R5 of seed 001 §3.3), not the WAL's own scan.
 */
import { createHash } from "node:crypto";
import { mkdtemp, open, rm, writeFile, rename, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Wal, WalError, WalFailHard, decodeSafeSeq, encodeFrame, nodeWalFs } from "../../src/telemetry/index.js";
import type { WalFs, WalLogger } from "../../src/telemetry/index.js";
import { seededRng } from "../../src/lib/index.js";
import type { Rng } from "../../src/lib/index.js";
import { PowerCut, PowerLossFs, isPowerCut } from "../helpers/power-loss-fs.js";
import type { CrashOptions, MetadataMode } from "../helpers/power-loss-fs.js";

const ITERATIONS = Number(process.env.WAL_HARNESS_ITERATIONS ?? 1000);
const SEED = process.env.WAL_HARNESS_SEED !== undefined ? Number(process.env.WAL_HARNESS_SEED) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
const ONLY = process.env.WAL_HARNESS_ONLY !== undefined ? Number(process.env.WAL_HARNESS_ONLY) : undefined;
const REPLAY = `WAL_HARNESS_SEED=${SEED}`;
/** Which directory-metadata models power loss draws from (see MetadataMode); "any" is opt-in, stricter than POSIX journaling. */
const METADATA = (process.env.WAL_HARNESS_METADATA?.split(",") ?? ["strict", "ordered"]) as MetadataMode[];
/** Generous: the default run takes a few seconds; 10k iterations must not time out either. */
const TIMEOUT_MS = 120_000 + ITERATIONS * 60;

console.log(`[wal-crash-harness] seed=${SEED} iterations=${ITERATIONS}${ONLY !== undefined ? ` only=${ONLY}` : ""} (replay: ${REPLAY})`);

/** An independent stream per harness and iteration, so one iteration replays alone. */
function iterationRng(harness: number, i: number): Rng {
  let h = (SEED ^ Math.imul(harness, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = (h + Math.imul(i + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return seededRng(h ^ (h >>> 16));
}

const int = (rng: Rng, n: number): number => Math.floor(rng() * n);
const iterations = (): number[] => (ONLY !== undefined ? [ONLY] : Array.from({ length: ITERATIONS }, (_, i) => i));

/** Event payloads of varied size, with multi-byte UTF-8 so byte and character lengths differ. */
function makeEvent(rng: Rng, fields: Record<string, number | string>): Record<string, unknown> {
  const alphabet = ["a", "b", "z", "é", "→", "😀", " ", "\"", "\\", "\n"];
  let pad = "";
  for (let k = int(rng, 140); k > 0; k--) pad += alphabet[int(rng, alphabet.length)] ?? "a";
  return { ...fields, pad, ok: true, nested: { n: int(rng, 1000) } };
}

function captureLog(): WalLogger & { records: { level: string; msg: string; obj: Record<string, unknown> }[] } {
  const records: { level: string; msg: string; obj: Record<string, unknown> }[] = [];
  return {
    records,
    warn: (obj, msg) => void records.push({ level: "warn", msg, obj }),
    error: (obj, msg) => void records.push({ level: "error", msg, obj }),
  };
}

// ------------------------------------------------------------------ independent on-disk verifier

const INVARIANTS = ["R1_FIRST_SEQ_IS_ONE", "R2_SEQ_CONTIGUOUS", "R3_SAFESEQ_LE_MAXSEQ", "R4_SAFESEQ_FRAME_EXISTS", "R5_NO_PHANTOMS", "NO_JSON_CORRUPTION"] as const;
type Invariant = (typeof INVARIANTS)[number];
type InvariantReport = Record<Invariant, { pass: boolean; msg: string }>;

interface Frame {
  seq: number;
  event: unknown;
  end: number;
}

/** Parses [u32 BE length][JSON] frames up to the structural end; no knowledge of the WAL's own scanner. */
function parseFrames(bytes: Uint8Array): { frames: Frame[]; invalidJson: number[]; structuralEnd: number } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const frames: Frame[] = [];
  const invalidJson: number[] = [];
  let pos = 0;
  while (pos + 4 <= buf.length) {
    const len = buf.readUInt32BE(pos);
    if (pos + 4 + len > buf.length) break;
    try {
      const doc = JSON.parse(buf.subarray(pos + 4, pos + 4 + len).toString("utf8")) as { seq: number; event: unknown };
      frames.push({ seq: doc.seq, event: doc.event, end: pos + 4 + len });
    } catch {
      invalidJson.push(pos);
      break;
    }
    pos += 4 + len;
  }
  return { frames, invalidJson, structuralEnd: pos };
}

const SEGMENT_NAME = /^telemetry\.wal\.(\d{20})-(\d{20})(?:\.([0-9a-f]{64}))?$/;

/** The directory's files, read raw: base, sealed segments (by our own parse of their names), the active file, the safe point. */
async function readDisk(fs: WalFs, dir: string): Promise<{ base: number; sealed: { first: number; last: number; sha256: string | undefined; bytes: Uint8Array }[]; active: Uint8Array; safe: Uint8Array | undefined }> {
  const baseRaw = await fs.readFile(`${dir}/telemetry.wal.base`);
  const sealed: { first: number; last: number; sha256: string | undefined; bytes: Uint8Array }[] = [];
  for (const name of await fs.list(dir)) {
    const m = SEGMENT_NAME.exec(name);
    if (m) sealed.push({ first: Number(m[1]), last: Number(m[2]), sha256: m[3], bytes: (await fs.readFile(`${dir}/${name}`)) ?? new Uint8Array(0) });
  }
  sealed.sort((a, b) => a.first - b.first);
  return { base: baseRaw === undefined ? 0 : Number(Buffer.from(baseRaw).readBigUInt64LE(0)) /* the first 8 bytes are the seq in both forms */, sealed, active: (await fs.readFile(`${dir}/telemetry.wal`)) ?? new Uint8Array(0), safe: await fs.readFile(`${dir}/telemetry.safe_seq`) };
}

/**
 * Seed 001 R1–R5 on a recovered directory's raw bytes: after recovery the
 * logical WAL (sealed segments, then the active file) is exactly frames
 * base+1..safe_seq, every sealed segment holds exactly the seqs its name says,
 * and nothing follows the safe frame. A missing safe_seq is only valid before
 * the first commit (first run: the first append creates it), with an empty WAL.
 */
function checkDisk(disk: Awaited<ReturnType<typeof readDisk>>): { report: InvariantReport; safeSeq: number | undefined; frames: Frame[] } {
  const { base, safe } = disk;
  const frames: Frame[] = [];
  const invalidJson: number[] = [];
  const badSegments: string[] = [];
  for (const seg of disk.sealed) {
    const p = parseFrames(seg.bytes);
    invalidJson.push(...p.invalidJson);
    if (p.structuralEnd !== seg.bytes.byteLength || p.frames[0]?.seq !== seg.first || p.frames[p.frames.length - 1]?.seq !== seg.last) badSegments.push(`${seg.first}-${seg.last}`);
    if (seg.sha256 === undefined || createHash("sha256").update(seg.bytes).digest("hex") !== seg.sha256) badSegments.push(`${seg.first}-${seg.last} (digest)`);
    frames.push(...p.frames);
  }
  const act = parseFrames(disk.active);
  invalidJson.push(...act.invalidJson);
  frames.push(...act.frames);
  const safeSeq = safe === undefined ? undefined : decodeSafeSeq(safe);
  const maxSeq = frames.length === 0 ? base : (frames[frames.length - 1]?.seq ?? 0);
  const r = (pass: boolean, msg: string): { pass: boolean; msg: string } => ({ pass, msg: pass ? "ok" : msg });
  const gap = frames.findIndex((f, i) => f.seq !== base + i + 1);
  const s = safe === undefined ? base : (safeSeq ?? -1);
  const activeFirst = (disk.sealed[disk.sealed.length - 1]?.last ?? base) + 1;
  const safeEnd = s === activeFirst - 1 ? 0 : act.frames.find((f) => f.seq === s)?.end;
  const report: InvariantReport = {
    R1_FIRST_SEQ_IS_ONE: r(frames.length === 0 || frames[0]?.seq === base + 1, `first frame has seq ${frames[0]?.seq}, base ${base}`),
    R2_SEQ_CONTIGUOUS: r(gap === -1 && badSegments.length === 0, `frame ${gap} has seq ${frames[gap]?.seq}; segments not matching their names: ${badSegments.join(",")}`),
    R3_SAFESEQ_LE_MAXSEQ: r(s >= base && s <= maxSeq, safe !== undefined && safeSeq === undefined ? `safe_seq is ${safe.byteLength} bytes, not 8` : `safe_seq=${safeSeq} maxSeq=${maxSeq} base=${base}`),
    R4_SAFESEQ_FRAME_EXISTS: r(safeEnd !== undefined, `no frame with seq ${safeSeq} in the active segment (it starts at ${activeFirst})`),
    R5_NO_PHANTOMS: r(maxSeq === s && disk.active.byteLength === safeEnd, `safe_seq=${safeSeq ?? "missing"} but ${frames.length} frames (max ${maxSeq}) and ${disk.active.byteLength} active bytes (safe frame ends at ${safeEnd})`),
    NO_JSON_CORRUPTION: r(invalidJson.length === 0, `unparseable frame at byte ${invalidJson[0]}`),
  };
  return { report, safeSeq, frames };
}

const failedInvariants = (rep: InvariantReport): string[] => INVARIANTS.filter((k) => !rep[k].pass).map((k) => `${k}: ${rep[k].msg}`);

// ------------------------------------------------------------------ 1. seed 002 harness (real file system)

interface Seed002Iteration {
  iteration: number;
  n: number;
  phantoms: number;
  torn_tail: boolean;
  pass: boolean;
  violations: string[];
}

describe("seed 002 crash harness: phantom frames in the S3 window (real file system)", () => {
  let root = "";
  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it(
    "reopen keeps exactly the N acknowledged entries and discards the phantoms",
    async () => {
      root = await mkdtemp(join(tmpdir(), "wal-seed002-"));
      const started = Date.now();
      const results: Seed002Iteration[] = [];
      const invariants = Object.fromEntries(INVARIANTS.map((k) => [k, { pass: true, msg: "ok" }])) as InvariantReport;
      let acknowledged = 0;
      let phantomsInjected = 0;
      for (const i of iterations()) {
        const rng = iterationRng(1, i);
        const dir = join(root, `it-${i}`);
        const log = captureLog();
        const violations: string[] = [];
        const n = 1 + int(rng, 10);
        const events: Record<string, unknown>[] = [];
        const wal = await Wal.open(dir, { log });
        for (let k = 1; k <= n; k++) {
          const e = makeEvent(rng, { it: i, k });
          const seq = await wal.append(e);
          if (seq !== k) violations.push(`append ${k} acknowledged as seq ${seq}`);
          events.push(e);
          acknowledged++;
        }
        await wal.close();

        // The S3 window: frames reached the WAL and its fsync, the safe point never moved.
        const phantoms = 1 + (rng() < 0.25 ? int(rng, 3) : 0);
        const chunks: Uint8Array[] = [];
        for (let j = 1; j <= phantoms; j++) chunks.push(encodeFrame({ seq: n + j, event: { phantom: true, it: i, j } }));
        const tornTail = rng() < 0.3;
        if (tornTail) {
          const f = encodeFrame({ seq: n + phantoms + 1, event: makeEvent(rng, { torn: 1 }) });
          chunks.push(f.subarray(0, 1 + int(rng, f.byteLength - 1)));
        }
        const fh = await open(join(dir, "telemetry.wal"), "a");
        await fh.write(Buffer.concat(chunks));
        await fh.sync();
        await fh.close();
        phantomsInjected += phantoms;

        let reopened: Wal | undefined;
        try {
          reopened = await Wal.open(dir, { log });
        } catch (e) {
          violations.push(`reopen failed: ${e instanceof Error ? e.message : String(e)}`);
        }
        if (reopened) {
          const got = await reopened.readFrom(0);
          if (got.length !== n) violations.push(`ReadFrom(0) returned ${got.length} entries, want ${n}`);
          got.forEach((entry, idx) => {
            if (entry.seq !== idx + 1) violations.push(`entry ${idx} has seq ${entry.seq}`);
            if (JSON.stringify(entry.event) !== JSON.stringify(events[idx])) violations.push(`entry ${entry.seq} content differs`);
          });
          if (reopened.recovered.scan.phantoms !== phantoms) violations.push(`recovery discarded ${reopened.recovered.scan.phantoms} phantoms, want ${phantoms}`);
          const disk = checkDisk(await readDisk(nodeWalFs, dir));
          if (disk.safeSeq !== n) violations.push(`on-disk safe_seq=${disk.safeSeq}, want ${n}`);
          for (const k of INVARIANTS) {
            if (!disk.report[k].pass) {
              invariants[k] = { pass: false, msg: `iteration ${i}: ${disk.report[k].msg}` };
              violations.push(`${k}: ${disk.report[k].msg}`);
            }
          }
          const next = await reopened.append({ after: "reopen", it: i });
          if (next !== n + 1) violations.push(`append after reopen got seq ${next}, want ${n + 1}`);
          await reopened.close();
        }
        for (const r of log.records) violations.push(`log ${r.level} ${r.msg} ${JSON.stringify(r.obj)}`);
        results.push({ iteration: i, n, phantoms, torn_tail: tornTail, pass: violations.length === 0, violations });
        await rm(dir, { recursive: true, force: true });
      }
      const failed = results.filter((r) => !r.pass);
      const ms = Date.now() - started;
      console.log(`[wal-crash-harness] seed002 seed=${SEED} iterations=${results.length} acknowledged=${acknowledged} phantoms_injected=${phantomsInjected} lost=0 phantoms_surfaced=${failed.length === 0 ? 0 : "see violations"} failed=${failed.length} ms=${ms}`);
      if (process.env.WAL_VERIFY_OUT) await writeWalVerify(process.env.WAL_VERIFY_OUT, root, results, invariants);
      expect(failed.slice(0, 5).map((r) => ({ ...r, replay: `${REPLAY} WAL_HARNESS_ONLY=${r.iteration}` }))).toEqual([]);
    },
    TIMEOUT_MS,
  );
});

/** The seed 002 evidence file (wal_verify.json schema), including its step-4 atomic rename check. */
async function writeWalVerify(out: string, root: string, results: Seed002Iteration[], invariants: InvariantReport): Promise<void> {
  const target = join(root, "rename-check");
  await writeFile(`${target}.tmp`, "sentinel");
  await rename(`${target}.tmp`, target);
  const renameAtomic = (await readFile(target, "utf8")) === "sentinel" ? "PASS" : "FAIL";
  const failed = results.filter((r) => !r.pass).length;
  const doc = {
    timestamp: new Date().toISOString(),
    seed: SEED,
    arch: process.arch,
    fs_type: process.env.WAL_VERIFY_FS ?? "unknown",
    total_iterations: results.length,
    passed: results.length - failed,
    failed,
    pass: failed === 0 && renameAtomic === "PASS",
    rename_atomic: renameAtomic,
    run_n: Number(process.env.WAL_VERIFY_RUN ?? 1),
    invariants,
    violations: results.flatMap((r) => r.violations.map((v) => ({ iteration: r.iteration, code: v.split(":")[0], msg: v }))),
    iterations: results.map(({ iteration, n, phantoms, torn_tail, pass }) => ({ iteration, entries: n, phantoms, torn_tail, pass })),
  };
  await writeFile(out, JSON.stringify(doc, null, 2) + "\n");
}

// ------------------------------------------------------------------ 2./3. power loss and process death (PowerLossFs)

const DIR = "/var/lib/autonomy/telemetry";

type Stage = "power" | "process" | "error" | "clean";

interface HarnessConfig {
  /** Session-end stages to draw from. */
  stages: readonly Stage[];
  metadata: readonly MetadataMode[];
}

interface Stats {
  iterations: number;
  sessions: number;
  appendsAttempted: number;
  acknowledged: number;
  /** Entries recovery surfaced although their append was never acknowledged (crash after the safe point moved). */
  committedUnacked: number;
  crashes: Record<string, number>;
  torn: Record<string, number>;
  stalls: number;
  /** Sealed segments seen after recoveries, and the highest reclaimed base. */
  sealed: number;
  reclaimed: number;
}

interface Violation {
  iteration: number;
  session: number;
  kind: string;
  detail: string;
  replay: string;
  crash?: unknown;
  /** What the iteration did up to the violation (sessions, stages, crashes). */
  trace?: string[];
}

interface Expected {
  json: string;
  /** Acknowledged by append, or already shown to a reader by an earlier recovery: must never disappear. */
  committed: boolean;
  how: "acked" | "surfaced" | "pending";
}

class Iteration {
  fs: PowerLossFs;
  readonly expected = new Map<number, Expected>();
  readonly log = captureLog();
  session = 0;
  lastCrash: unknown;
  readonly steps: string[] = [];
  /** Bounded disk: seal at this size, reclaim up to `confirmed` (the exporter's position); 0: seed-exact mode (never seals, only the seed's files). */
  readonly segmentBytes: number;
  confirmed = 0;

  constructor(
    readonly i: number,
    readonly rng: Rng,
    readonly cfg: HarnessConfig,
    readonly stats: Stats,
    readonly violations: Violation[],
  ) {
    this.fs = new PowerLossFs({ rng });
    this.segmentBytes = rng() < 0.5 ? 0 : 100 + int(rng, 500);
  }

  /** A consumer confirms some committed prefix (never beyond what recovery showed). */
  advanceConfirmed(): void {
    const committed = [...this.expected].filter(([, e]) => e.committed).map(([seq]) => seq);
    const top = Math.max(this.confirmed, ...committed);
    this.confirmed += int(this.rng, top - this.confirmed + 1);
  }

  violation(kind: string, detail: string): void {
    this.violations.push({ iteration: this.i, session: this.session, kind, detail, replay: `${REPLAY} WAL_HARNESS_ONLY=${this.i}`, crash: this.lastCrash, trace: [...this.steps] });
  }

  trace(step: string): void {
    this.steps.push(`s${this.session} op${this.fs.opCount} ${step}`);
  }

  /** Power loss now: a strict or seeded image of what was durable. */
  powerLoss(stage: string): void {
    const metadata = this.cfg.metadata[int(this.rng, this.cfg.metadata.length)] ?? "strict";
    const opts: CrashOptions = metadata === "strict" && this.rng() < 0.3 ? {} : { rng: this.rng, metadata, tornWrites: this.rng() < 0.7 };
    this.trace(`power loss (${stage}, metadata ${opts.metadata ?? "strict"}, torn ${opts.tornWrites ?? false})`);
    this.fs = this.fs.crash(opts);
    const rep = this.fs.crashReport;
    this.lastCrash = rep;
    this.stats.crashes[stage] = (this.stats.crashes[stage] ?? 0) + 1;
    for (const f of rep?.files ?? []) this.stats.torn[f.outcome] = (this.stats.torn[f.outcome] ?? 0) + 1;
  }

  /** Opens the WAL, sometimes crashing (power or process) in the middle of recovery first. Undefined after a violation. */
  async open(maxBatch: number | undefined): Promise<Wal | undefined> {
    for (let attempt = 0; ; attempt++) {
      const armed = attempt < 3 && this.rng() < 0.25;
      if (armed) {
        const k = 1 + int(this.rng, 8);
        this.fs.cutPowerAt(k);
        this.trace(`open: power cut armed at recovery op +${k}`);
      }
      try {
        const wal = await Wal.open(DIR, { fs: this.fs, log: this.log, segmentBytes: this.segmentBytes, confirmed: () => Promise.resolve(this.confirmed), ...(maxBatch ? { maxBatch } : {}) });
        // Reclamation after recovery swallows its own failure (it only frees space): a cut there still killed the machine.
        if (this.fs.poweredOff) throw new PowerCut("reclaim-on-open", 0);
        this.fs.disarm();
        return wal;
      } catch (e) {
        if (isPowerCut(e) && this.fs.poweredOff) {
          if (this.rng() < 0.7) this.powerLoss("during-recovery:power");
          else {
            this.trace("process killed during recovery");
            this.fs = this.fs.restart();
            this.stats.crashes["during-recovery:process"] = (this.stats.crashes["during-recovery:process"] ?? 0) + 1;
          }
          continue;
        }
        const what = e instanceof WalFailHard ? `WalFailHard ${e.code}: ${e.message}` : e instanceof Error ? `${e.name}: ${e.message}` : String(e);
        this.violation(e instanceof WalFailHard ? "FAIL_HARD_ON_CRASH_IMAGE" : "OPEN_FAILED", what);
        return undefined;
      }
    }
  }

  /** Everything that must hold right after a recovery; then what was shown becomes committed. */
  async verify(wal: Wal): Promise<boolean> {
    const before = this.violations.length;
    const last = wal.lastSeq;
    const base = wal.base;
    this.trace(`recovered: mode ${wal.recovered.mode}, lastSeq ${last}, phantoms ${wal.recovered.scan.phantoms}, base ${base}, sealed ${wal.sealedSegments.length}`);
    if (base > this.confirmed) this.violation("RECLAIMED_UNCONFIRMED", `base ${base} is beyond the confirmed position ${this.confirmed}`);
    this.stats.reclaimed = Math.max(this.stats.reclaimed, base);
    this.stats.sealed += wal.sealedSegments.length;
    for (const [seq, e] of this.expected) {
      if (e.committed && seq > last) this.violation("LOST", `seq ${seq} (${e.how}) is gone: recovered last seq is ${last}`);
      if (seq <= base) this.expected.delete(seq); // confirmed and reclaimed: gone by design
    }
    const entries = await wal.readFrom(0);
    if (entries.length !== last - base) this.violation("COUNT", `readFrom(0) returned ${entries.length} entries, lastSeq is ${last}, base ${base}`);
    entries.forEach((entry, idx) => {
      if (entry.seq !== base + idx + 1) this.violation("NOT_CONTIGUOUS", `entry ${idx} has seq ${entry.seq} (base ${base})`);
      const want = this.expected.get(entry.seq);
      if (!want) this.violation("PHANTOM", `seq ${entry.seq} was never appended: ${JSON.stringify(entry.event).slice(0, 120)}`);
      else if (JSON.stringify(entry.event) !== want.json) this.violation("CONTENT", `seq ${entry.seq} (${want.how}) differs: got ${JSON.stringify(entry.event).slice(0, 80)}, want ${want.json.slice(0, 80)}`);
    });
    const beyond = await wal.readFrom(last + 1);
    if (beyond.length > 0) this.violation("PHANTOM", `readFrom(${last + 1}) returned ${beyond.length} entries beyond the safe point`);
    const disk = checkDisk(await readDisk(this.fs, DIR));
    const firstRun = wal.recovered.mode === "first_run" || wal.recovered.mode === "operator_reset";
    if (disk.safeSeq !== last && !(disk.safeSeq === undefined && last === 0 && firstRun)) this.violation("SAFE_SEQ", `on-disk safe_seq=${disk.safeSeq}, recovered last seq ${last} (${wal.recovered.mode})`);
    for (const f of failedInvariants(disk.report)) this.violation("DISK", f);
    if (this.segmentBytes === 0) {
      // Seed-exact mode: whatever the crash, the directory holds only files seed 001 names.
      const foreign = (await this.fs.list(DIR)).filter((n) => !["telemetry.wal", "telemetry.safe_seq", "telemetry.safe_seq.tmp"].includes(n));
      if (foreign.length > 0) this.violation("SEED_EXACT", `files seed 001 does not name in a seed-exact WAL directory: ${foreign.join(", ")}`);
    }
    if (disk.frames.length !== entries.length) this.violation("DISK", `independent parse finds ${disk.frames.length} frames, the WAL ${entries.length}`);
    for (const r of this.log.records.splice(0)) if (r.level === "error") this.violation("FAIL_HARD_LOGGED", `${r.msg} ${JSON.stringify(r.obj)}`);
    // What recovery showed is now the truth: it must survive every later crash. The rest is gone for good.
    for (const [seq, e] of this.expected) {
      if (seq > last) this.expected.delete(seq);
      else if (!e.committed) {
        this.stats.committedUnacked++;
        e.committed = true;
        e.how = "surfaced";
      }
    }
    return this.violations.length === before;
  }

  /** One process lifetime: open (recover), verify, a workload, and how it ends. False to stop the iteration. */
  async runSession(final: boolean): Promise<boolean> {
    this.session++;
    this.stats.sessions++;
    const maxBatch = [undefined, undefined, 1, 2, 3][int(this.rng, 5)];
    this.advanceConfirmed();
    const wal = await this.open(maxBatch);
    if (!wal || !(await this.verify(wal))) return false;
    const base = wal.lastSeq;
    let calls = 0;
    let rejected: unknown;
    const doAppend = (tag: string): Promise<number> => {
      const call = ++calls;
      const want = base + call;
      const event = makeEvent(this.rng, { it: this.i, s: this.session, c: call, tag });
      this.expected.set(want, { json: JSON.stringify(event), committed: false, how: "pending" });
      this.stats.appendsAttempted++;
      const p = wal.append(event);
      p.then(
        (seq) => {
          this.stats.acknowledged++;
          if (seq !== want) this.violation("ACK_SEQ", `append #${call} acknowledged as seq ${seq}, want ${want}`);
          const e = this.expected.get(seq);
          if (e) {
            e.committed = true;
            e.how = "acked";
          }
        },
        (e: unknown) => {
          rejected ??= e;
        },
      );
      return p;
    };

    if (final) {
      // No fault is armed now: the final append must succeed, continue from last+1 after the last recovery, and read back.
      try {
        const seq = await doAppend("final");
        const [back] = await wal.readFrom(seq);
        if (JSON.stringify(back?.event) !== this.expected.get(seq)?.json) this.violation("FINAL_APPEND", `the final append (seq ${seq}) does not read back as appended`);
      } catch (e) {
        this.violation("FINAL_APPEND", `the final append, with no fault armed, was rejected: ${e instanceof Error ? e.message : String(e)}`);
      }
      await wal.close();
      return this.violations.length === 0;
    }

    const stage = this.cfg.stages[int(this.rng, this.cfg.stages.length)] ?? "power";
    const n = 1 + int(this.rng, 10);
    // Seals (rename, fsync, create, fsync) and reclamations (base write, unlinks, fsync) add operations.
    const opsBudget = this.segmentBytes > 0 ? 14 * n + 8 : 7 * n + 2;
    let errno: "EIO" | "ENOSPC" | undefined;
    if (stage === "power" || stage === "process") {
      const k = 1 + int(this.rng, opsBudget);
      this.fs.cutPowerAt(k);
      this.trace(`workload: ${n} appends, maxBatch ${maxBatch ?? "default"}, ${stage} cut at op +${k}`);
    }
    if (stage === "error") {
      errno = this.rng() < 0.5 ? "EIO" : "ENOSPC";
      const k = 1 + int(this.rng, opsBudget);
      this.fs.failAfter(k, errno);
      this.trace(`workload: ${n} appends, maxBatch ${maxBatch ?? "default"}, ${errno} at op +${k}`);
    }
    if (stage === "clean") this.trace(`workload: ${n} appends, maxBatch ${maxBatch ?? "default"}, no fault`);
    const run = this.workload(doAppend, n);
    let done = false;
    run.then(
      () => (done = true),
      () => (done = true),
    );
    // Every PowerLossFs operation settles in microtasks: one macrotask turn without completion is a stall.
    for (let turns = 0; !done; turns++) {
      await new Promise((r) => setImmediate(r));
      if (done) break;
      if (rejected !== undefined || this.fs.poweredOff) break; // dead instance: abandon whatever is stuck
      this.stats.stalls++;
      if (turns > 20) {
        this.violation("HANG", `the workload made no progress after ${turns} kicks`);
        return false;
      }
      // An unrelated append restarts the drain, as steady traffic would in production.
      doAppend("kick").catch(() => undefined);
    }
    this.fs.disarm();

    this.trace(`workload ended: acked ${[...this.expected.values()].filter((e) => e.how === "acked").length} in total, rejected ${rejected instanceof Error ? rejected.message.slice(0, 60) : "none"}`);
    if (rejected !== undefined && !this.fs.poweredOff) {
      // An injected failure: the first rejection names it, the instance is poisoned, nothing acknowledged is lost.
      const code = rejected instanceof WalError ? rejected.code : rejected instanceof Error ? rejected.message : typeof rejected;
      const want = errno === "ENOSPC" ? "WAL_DISK_FULL" : "WAL_IO";
      // A failed seal (between commits) poisons the instance without failing an append: the next one says so.
      const sealFailed = code === "WAL_POISONED" && this.segmentBytes > 0;
      if (code !== want && !sealFailed) this.violation("ERROR_CODE", `an injected ${errno} surfaced as ${code}, want ${want}`);
      await wal.append({ after: "failure" }).then(
        () => this.violation("NOT_POISONED", "an append after a failed write was accepted"),
        (e: unknown) => {
          if (!(e instanceof WalError && e.code === "WAL_POISONED")) this.violation("NOT_POISONED", `got ${String(e)}`);
        },
      );
      await wal.close();
      this.trace("poisoned WAL closed; the same process reopens (no crash)");
      this.stats.crashes[`error:${errno}`] = (this.stats.crashes[`error:${errno}`] ?? 0) + 1;
      if (this.rng() < 0.5) this.powerLoss("error+power");
      return true;
    }
    if (this.fs.poweredOff) {
      if (stage === "process") {
        this.trace("process killed (SIGKILL): the kernel keeps its state");
        this.fs = this.fs.restart();
        this.stats.crashes["workload:process"] = (this.stats.crashes["workload:process"] ?? 0) + 1;
      } else this.powerLoss("workload:power");
      return true;
    }
    // The cut fell beyond the workload (or none was armed): a clean close, sometimes power loss after it.
    await wal.close();
    this.trace("clean close");
    if (stage === "clean" || this.rng() < 0.5) this.stats.crashes["clean-close"] = (this.stats.crashes["clean-close"] ?? 0) + 1;
    else this.powerLoss("after-workload:power");
    return true;
  }

  /** Sequential and group-committed appends, in the shapes callers use. */
  async workload(doAppend: (tag: string) => Promise<number>, n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      const r = this.rng();
      const k = Math.min(left, 2 + int(this.rng, 4));
      if (r < 0.3) {
        await doAppend("seq");
        left--;
      } else if (r < 0.6) {
        await Promise.all(Array.from({ length: k }, () => doAppend("group")));
        left -= k;
      } else if (r < 0.75) {
        // Through one more async layer, as a helper like `log(event)` would.
        const helper = async (): Promise<void> => {
          await doAppend("wrapped");
        };
        await helper();
        left--;
      } else {
        const ps = Array.from({ length: k }, () => doAppend("burst"));
        for (const p of ps) await p;
        left -= k;
      }
    }
  }
}

async function runHarness(name: string, harness: number, cfg: HarnessConfig): Promise<{ stats: Stats; violations: Violation[] }> {
  const stats: Stats = { iterations: 0, sessions: 0, appendsAttempted: 0, acknowledged: 0, committedUnacked: 0, crashes: {}, torn: {}, stalls: 0, sealed: 0, reclaimed: 0 };
  const violations: Violation[] = [];
  const started = Date.now();
  for (const i of iterations()) {
    const rng = iterationRng(harness, i);
    const it = new Iteration(i, rng, cfg, stats, violations);
    stats.iterations++;
    await it.fs.mkdirDurable(DIR); // an installed node: the state directory exists and is durable
    const sessions = 1 + int(rng, 3);
    let ok = true;
    for (let s = 0; s < sessions && ok; s++) ok = await it.runSession(false);
    if (ok) await it.runSession(true);
  }
  const lost = violations.filter((v) => v.kind === "LOST").length;
  const phantoms = violations.filter((v) => v.kind === "PHANTOM").length;
  console.log(
    `[wal-crash-harness] ${name} seed=${SEED} iterations=${stats.iterations} sessions=${stats.sessions} appends=${stats.appendsAttempted} acknowledged=${stats.acknowledged} ` +
      `committed_unacked=${stats.committedUnacked} lost=${lost} phantoms=${phantoms} violations=${violations.length} stalls=${stats.stalls} sealed=${stats.sealed} max_base=${stats.reclaimed} ` +
      `crashes=${JSON.stringify(stats.crashes)} torn=${JSON.stringify(stats.torn)} ms=${Date.now() - started}`,
  );
  for (const v of violations.slice(0, 3)) console.log(`[wal-crash-harness] ${name} violation ${JSON.stringify(v)}`);
  if (process.env.WAL_HARNESS_DUMP) await writeFile(`${process.env.WAL_HARNESS_DUMP}.${name}.json`, JSON.stringify({ seed: SEED, stats, violations }, null, 2) + "\n");
  return { stats, violations };
}

const summarize = (vs: Violation[]): { kinds: Record<string, number>; first: Omit<Violation, "crash">[] } => ({
  kinds: vs.reduce<Record<string, number>>((acc, v) => ({ ...acc, [v.kind]: (acc[v.kind] ?? 0) + 1 }), {}),
  first: vs.slice(0, 3).map(({ iteration, session, kind, detail, replay }) => ({ iteration, session, kind, detail, replay })),
});

describe("power-loss crash harness (PowerLossFs)", () => {
  it(
    "power cut at a random operation, in the workload or in recovery: nothing acknowledged lost, no phantom, no fail-hard",
    async () => {
      const { violations } = await runHarness("power-loss", 2, { stages: ["power", "power", "power", "error", "clean"], metadata: METADATA });
      expect(summarize(violations)).toEqual({ kinds: {}, first: [] });
    },
    TIMEOUT_MS,
  );

  it(
    "process death (SIGKILL at operation k) then power loss: what recovery showed a reader survives",
    async () => {
      const { violations } = await runHarness("process+power", 3, { stages: ["process", "process", "power", "error"], metadata: METADATA });
      expect(summarize(violations)).toEqual({ kinds: {}, first: [] });
    },
    TIMEOUT_MS,
  );
});

// ------------------------------------------------------------------ deterministic reproductions of what the harness found

/** Resolves with whether `p` settled before the event loop went idle (PowerLossFs is microtask-only). */
async function settlesWithoutHelp(p: Promise<unknown>): Promise<boolean> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let k = 0; k < 5 && !settled; k++) await new Promise((r) => setImmediate(r));
  return settled;
}

describe("WAL findings, reduced to their smallest reproduction", () => {
  const quiet = captureLog();

  it("liveness: an append issued right after a group-committed batch completes resolves (group commit must not lose the wakeup)", async () => {
    const fs = new PowerLossFs();
    await fs.mkdirDurable(DIR);
    const wal = await Wal.open(DIR, { fs, log: quiet });
    await Promise.all([wal.append({ a: 1 }), wal.append({ a: 2 })]);
    const third = wal.append({ a: 3 }); // issued in the continuation, before #drain's `.finally` clears #flushing
    expect(await settlesWithoutHelp(third)).toBe(true);
  });

  it("liveness on the real file system too: `await helper()` then append", async () => {
    const dir = await mkdtemp(join(tmpdir(), "wal-wakeup-"));
    try {
      const wal = await Wal.open(dir, { log: quiet });
      const helper = async (): Promise<void> => {
        await wal.append({ a: 1 });
      };
      await helper();
      const second = wal.append({ b: 2 });
      const outcome = await Promise.race([second.then(() => "resolved"), new Promise((r) => setTimeout(() => r("still pending after 2 s"), 2000))]);
      expect(outcome).toBe("resolved");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a WAL directory that Wal.open creates survives power loss (mkdir is made durable in its parent)", async () => {
    const fs = new PowerLossFs();
    await fs.mkdirDurable("/var/lib/autonomy"); // the parent exists; the WAL creates telemetry/
    const wal = await Wal.open(DIR, { fs, log: quiet });
    expect(await wal.append({ acknowledged: true })).toBe(1);
    const after = await Wal.open(DIR, { fs: fs.crash(), log: quiet });
    expect(await after.readFrom(0)).toEqual([{ seq: 1, event: { acknowledged: true } }]);
  });

  it("a process crash during the very first append (after the WAL fsync, before the rename) is not corruption", async () => {
    const fs = new PowerLossFs();
    await fs.mkdirDurable(DIR);
    const w1 = await Wal.open(DIR, { fs, log: quiet }); // first run: telemetry.wal created, no safe_seq yet
    fs.cutPowerAt(3); // append 1: WAL write (1), WAL fsync (2), temp create (3) ← SIGKILL here
    await expect(w1.append({ n: 1 })).rejects.toMatchObject({ code: "WAL_IO" });
    const afterKill = fs.restart();
    const w2 = await Wal.open(DIR, { fs: afterKill, log: quiet }); // throws WalFailHard SAFESEQ_MISSING
    expect(await w2.readFrom(0)).toEqual([]);
    expect(await w2.append({ n: "again" })).toBe(1);
  });

  it("after a failed directory fsync (EIO), the reopen the hint asks for shows only entries that survive power loss", async () => {
    const fs = new PowerLossFs();
    await fs.mkdirDurable(DIR);
    const w1 = await Wal.open(DIR, { fs, log: quiet });
    await w1.append({ n: 1 });
    fs.failAfter(7, "EIO"); // append 2: write, fsync, temp create, write, fsync, rename, fsync(dir) ← EIO
    await expect(w1.append({ n: 2 })).rejects.toMatchObject({ code: "WAL_IO" });
    await w1.close();
    const w2 = await Wal.open(DIR, { fs, log: quiet }); // WAL_POISONED's hint: "reopen the WAL"
    const shown = (await w2.readFrom(0)).map((e) => e.seq);
    const after = await Wal.open(DIR, { fs: fs.crash(), log: quiet });
    expect((await after.readFrom(0)).map((e) => e.seq)).toEqual(shown); // shown [1, 2]; after power loss [1]
  });

  it("an entry recovery shows a reader after a process crash survives a later power loss (recovery makes its safe point durable)", async () => {
    const fs = new PowerLossFs();
    await fs.mkdirDurable(DIR);
    const w1 = await Wal.open(DIR, { fs, log: quiet });
    await w1.append({ n: 1 });
    // Append 2: WAL write, WAL fsync, temp create+write+fsync, rename — the process dies at the directory fsync.
    fs.cutPowerAt(7);
    await expect(w1.append({ n: 2 })).rejects.toMatchObject({ code: "WAL_IO" });
    const afterKill = fs.restart(); // SIGKILL: the kernel still holds the rename
    const w2 = await Wal.open(DIR, { fs: afterKill, log: quiet });
    const shown = await w2.readFrom(0);
    expect(shown.map((e) => e.seq)).toEqual([1, 2]); // a reader is shown seq 2…
    const w3 = await Wal.open(DIR, { fs: afterKill.crash(), log: quiet });
    expect((await w3.readFrom(0)).map((e) => e.seq)).toEqual([1, 2]); // …which must not vanish
  });
});
