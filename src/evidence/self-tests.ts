import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { blake3 } from "hash-wasm";
import { writeFileAtomic } from "../lib/index.js";
import { LockError, canonicalJson, computeFingerprint, fingerprintPayload, hashInputFile, parseLock, serializeLock, verifyLock } from "../lock/index.js";
import {
  LEGACY_UPGRADE_ENV,
  OPERATOR_RESET_ENV,
  Wal,
  WalFailHard,
  decodeSafeSeq,
  encodeFrame,
  encodeSafeSeq,
  inspectWal,
  inspectWalDir,
  nodeWalFs,
  readCommitted,
  walPaths,
} from "../telemetry/index.js";
import type { OpenWalOptions, WalFailHardCause, WalFile, WalFs, WalLogger } from "../telemetry/index.js";
import { BLAKE3_VECTORS, GOLDEN_FINGERPRINT, GOLDEN_LOCK_JSON, GOLDEN_PAYLOAD, JCS_RFC8785_EXAMPLE, JCS_RFC8785_SORTING } from "./golden.js";
import { elapsed } from "./log.js";
import type { CellLog } from "./log.js";

/**
 * Step 1 of seed 002 ("Go unit tests"), adapted: the shipped product has no
 * test runner, so the invariants the Go suites prove are checked by a built-in
 * set of checks, each named after its clause, run against the real file
 * system of the cell (every WAL check works in a fresh directory there).
 */
export interface SelfTestResult {
  name: string;
  clause: string;
  pass: boolean;
  msg: string;
  ms: number;
  /** A fail-hard cause that surfaced where none was expected. */
  fail_hard?: WalFailHardCause;
}

type CapturedLog = WalLogger & { records: { level: string; msg: string; obj: Record<string, unknown> }[] };

export interface SelfTestContext {
  /** A fresh, empty directory on the cell's file system. */
  dir: string;
  walLog: CapturedLog;
}

export interface SelfTest {
  name: string;
  clause: string;
  /** Throws on failure; returns what was shown. */
  run(ctx: SelfTestContext): Promise<string>;
}

class CheckFailed extends Error {}

function check(cond: boolean, msg: string): asserts cond {
  if (!cond) throw new CheckFailed(msg);
}

/** No override variables from the operator's shell: every verdict must be the one the seed specifies. */
const NO_ENV: Readonly<Record<string, string | undefined>> = {};

type FrameSpec = number | Uint8Array;

/** A frame for seq `s` (an entry), or raw bytes used as they are. */
function frameBytes(f: FrameSpec): Uint8Array {
  return typeof f === "number" ? encodeFrame({ seq: f, event: { self_test: true, seq: f, text: "é→😀" } }) : f;
}

/** A structurally complete frame whose payload is not JSON. */
function badJsonFrame(): Uint8Array {
  const payload = Buffer.from("{\"seq\":2,\"event\":{not json", "utf8");
  const b = Buffer.alloc(4 + payload.length);
  b.writeUInt32BE(payload.length, 0);
  payload.copy(b, 4);
  return b;
}

/** Writes a crafted WAL image: frames into telemetry.wal, the safe point (a seq, raw bytes, or none). */
async function writeImage(dir: string, frames: readonly FrameSpec[], safe?: number | Uint8Array, extra?: Uint8Array): Promise<Buffer> {
  await mkdir(dir, { recursive: true });
  const p = walPaths(dir);
  const wal = Buffer.concat([...frames.map(frameBytes), ...(extra ? [extra] : [])]);
  await writeFile(p.wal, wal);
  if (safe !== undefined) await writeFile(p.safeSeq, typeof safe === "number" ? encodeSafeSeq(safe) : safe);
  return wal;
}

const open = (ctx: SelfTestContext, dir = ctx.dir, env = NO_ENV, extra: OpenWalOptions = {}): Promise<Wal> => Wal.open(dir, { log: ctx.walLog, env, ...extra });

async function readSafe(dir: string): Promise<number | undefined> {
  const raw = await nodeWalFs.readFile(walPaths(dir).safeSeq);
  return raw === undefined ? undefined : decodeSafeSeq(raw);
}

async function fileSize(path: string): Promise<number> {
  return (await stat(path)).size;
}

/**
 * Opening must fail hard with `cause`: a typed WalFailHard carrying the
 * directory, logged exactly once as WAL_RECOVERY_FAIL_HARD, the image left
 * byte for byte as it was; and the read-only verifier (inspectWal, what
 * wal_verify.json is built from) must name the same cause.
 */
async function expectFailHard(ctx: SelfTestContext, dir: string, cause: WalFailHardCause, opts: { env?: Record<string, string>; inspect?: boolean } = {}): Promise<string> {
  const p = walPaths(dir);
  const before = await nodeWalFs.readFile(p.wal);
  const logged = ctx.walLog.records.length;
  let err: unknown;
  try {
    const w = await open(ctx, dir, opts.env ?? NO_ENV);
    await w.close();
  } catch (e) {
    err = e;
  }
  check(err instanceof WalFailHard, `open succeeded or failed differently (${err instanceof Error ? err.message : String(err)}); want fail-hard ${cause}`);
  check(err.code === cause, `fail-hard cause ${err.code}, want ${cause}`);
  check(err.dir === dir && err.exitCode === 5, `fail-hard carries dir=${err.dir} exit=${err.exitCode}; want the WAL directory and exit 5`);
  const recs = ctx.walLog.records.slice(logged).filter((r) => r.msg === "WAL_RECOVERY_FAIL_HARD");
  check(recs.length === 1 && recs[0]?.obj.cause === cause && recs[0].obj.dir === dir, `want one WAL_RECOVERY_FAIL_HARD record with cause and dir, got ${JSON.stringify(recs)}`);
  const after = await nodeWalFs.readFile(p.wal);
  check(Buffer.compare(Buffer.from(before ?? []), Buffer.from(after ?? [])) === 0, "the WAL changed although recovery failed hard");
  if (opts.inspect !== false) {
    const i = inspectWal(after ?? new Uint8Array(0), await nodeWalFs.readFile(p.safeSeq));
    check(i.fail_hard === cause, `inspectWal says ${String(i.fail_hard)}, recovery says ${cause}`);
  }
  return `${cause} raised (exit 5), logged once, image untouched${opts.inspect !== false ? ", inspectWal agrees" : ""}`;
}

/** The real file system, with every mutating call recorded (for the ordering clauses). */
function recordingFs(dir: string, ops: string[]): WalFs {
  const base = nodeWalFs;
  const rel = (p: string): string => relative(dir, p) || ".";
  return {
    async openFile(path) {
      const f = await base.openFile(path);
      const file: WalFile = {
        read: (pos, len) => f.read(pos, len),
        write: async (d, pos) => {
          ops.push(`write ${rel(path)}`);
          await f.write(d, pos);
        },
        sync: async () => {
          ops.push(`fsync ${rel(path)}`);
          await f.sync();
        },
        truncate: async (n) => {
          ops.push(`truncate ${rel(path)}`);
          await f.truncate(n);
        },
        size: () => f.size(),
        close: () => f.close(),
      };
      return file;
    },
    openRead: (p) => base.openRead(p),
    readFile: (p) => base.readFile(p),
    writeFileSynced: async (p, d) => {
      ops.push(`write+fsync ${rel(p)}`);
      await base.writeFileSynced(p, d);
    },
    rename: async (a, b) => {
      ops.push(`rename ${rel(a)} -> ${rel(b)}`);
      await base.rename(a, b);
    },
    unlink: async (p) => {
      ops.push(`unlink ${rel(p)}`);
      await base.unlink(p);
    },
    exists: (p) => base.exists(p),
    list: (d) => base.list(d),
    fileSize: (p) => base.fileSize(p),
    fsyncDir: async (d) => {
      ops.push(`fsync-dir ${rel(d)}`);
      await base.fsyncDir(d);
    },
    mkdirp: (d) => base.mkdirp(d),
  };
}

export const SELF_TESTS: readonly SelfTest[] = [
  {
    name: "FRAME_FORMAT",
    clause: "seed 001 §3.3 frame format",
    async run(ctx) {
      const w = await open(ctx);
      const event = { kind: "decision", text: "é→😀" };
      await w.append(event);
      await w.close();
      const b = Buffer.from((await nodeWalFs.readFile(walPaths(ctx.dir).wal)) ?? []);
      const len = b.readUInt32BE(0);
      check(b.length === 4 + len, `file is ${b.length} bytes, header says ${len} + 4`);
      const payload = b.subarray(4).toString("utf8");
      check(payload === JSON.stringify({ seq: 1, event }), `payload ${payload}`);
      check(!payload.endsWith("\n"), "payload ends with a newline delimiter");
      return `[u32 BE ${len}][JSON] with no delimiter`;
    },
  },
  {
    name: "SAFESEQ_LITTLE_ENDIAN",
    clause: "seed 001 §3.5 encoding",
    async run(ctx) {
      const w = await open(ctx);
      for (let k = 0; k < 3; k++) await w.append({ k });
      await w.close();
      const raw = (await nodeWalFs.readFile(walPaths(ctx.dir).safeSeq)) ?? new Uint8Array(0);
      check(raw.byteLength === 8 && raw[0] === 3 && raw.subarray(1).every((x) => x === 0), `safe_seq bytes ${Buffer.from(raw).toString("hex")}, want 0300000000000000`);
      const big = encodeSafeSeq(0x0102030405);
      check(Buffer.from(big).toString("hex") === "0504030201000000", `encodeSafeSeq(0x0102030405) = ${Buffer.from(big).toString("hex")}`);
      check(decodeSafeSeq(big) === 0x0102030405 && decodeSafeSeq(encodeSafeSeq(Number.MAX_SAFE_INTEGER)) === Number.MAX_SAFE_INTEGER, "round trip failed");
      check(decodeSafeSeq(new Uint8Array(7)) === undefined, "a 7-byte safe_seq decoded");
      return "8-byte little-endian on disk; round trips to 2^53-1; wrong length rejected";
    },
  },
  {
    name: "S1_SAFESEQ_AFTER_EVERY_APPEND",
    clause: "seed 001 S1",
    async run(ctx) {
      const w = await open(ctx);
      try {
        for (let k = 1; k <= 4; k++) {
          const seq = await w.append({ k });
          check(seq === k, `append ${k} acknowledged as seq ${seq}`);
          const s = await readSafe(ctx.dir);
          check(s === k, `after ack ${k} the on-disk safe_seq is ${String(s)}`);
        }
      } finally {
        await w.close();
      }
      return "on-disk safe_seq = seq after each of 4 acknowledged appends";
    },
  },
  {
    name: "S8_S9_APPEND_ORDERING",
    clause: "seed 001 §3.5 MUST ordering, §3.6, S8, S9, WS-1",
    async run(ctx) {
      const ops: string[] = [];
      const w = await open(ctx, ctx.dir, NO_ENV, {
        fs: recordingFs(ctx.dir, ops),
        lock: true,
        hooks: { onWalSynced: () => void ops.push("hook wal-synced"), onSafeSeqAdvanced: () => void ops.push("hook safe-advanced") },
      });
      ops.length = 0;
      await w.append({ ordering: true });
      await w.close();
      const want = [
        "write telemetry.wal",
        "fsync telemetry.wal",
        "hook wal-synced",
        "write+fsync telemetry.safe_seq.tmp",
        "rename telemetry.safe_seq.tmp -> telemetry.safe_seq",
        "fsync-dir .",
        "hook safe-advanced",
      ];
      check(JSON.stringify(ops) === JSON.stringify(want), `append performed ${JSON.stringify(ops)}, want ${JSON.stringify(want)}`);
      return "WAL write → WAL fsync → tmp write+fsync → rename → dir fsync; no dir fsync after the WAL write";
    },
  },
  {
    name: "S2_TRUNCATE_TO_SAFE_POINT",
    clause: "seed 001 S2",
    async run(ctx) {
      await writeImage(ctx.dir, [1, 2, 3], 2);
      const keep = frameBytes(1).byteLength + frameBytes(2).byteLength;
      const w = await open(ctx);
      const phantoms = w.recovered.scan.phantoms;
      await w.close();
      const size = await fileSize(walPaths(ctx.dir).wal);
      check(size === keep, `WAL is ${size} bytes after recovery, want ${keep} (end of the safe-point frame)`);
      check(phantoms === 1, `recovery reported ${phantoms} phantoms, want 1`);
      return `truncated to ${keep} bytes (end of frame 2), not the structural end`;
    },
  },
  {
    name: "S3_R5_NO_PHANTOMS",
    clause: "seed 001 S3, R5",
    async run(ctx) {
      await writeImage(ctx.dir, [1, 2, 3], 1);
      const w = await open(ctx);
      try {
        const got = await w.readFrom(0);
        check(got.length === 1 && got[0]?.seq === 1, `ReadFrom(0) returned seqs ${JSON.stringify(got.map((e) => e.seq))}, want [1]`);
        const next = await w.append({ after: "phantoms" });
        check(next === 2, `next append got seq ${next}, want 2`);
        const again = await w.readFrom(2);
        check(again[0]?.event.after === "phantoms", "seq 2 reads back the phantom, not the new entry");
      } finally {
        await w.close();
      }
      return "2 phantoms discarded; ReadFrom(0) = [1]; next append is seq 2 with its own content";
    },
  },
  {
    name: "R5_GAP_BEYOND_SAFE_POINT_IS_PHANTOM",
    clause: "seed 001 §3.3 R2 (phantom range)",
    async run(ctx) {
      await writeImage(ctx.dir, [1, 2, 5], 2);
      const w = await open(ctx);
      const got = await w.readFrom(0);
      await w.close();
      check(got.map((e) => e.seq).join(",") === "1,2", `ReadFrom(0) = ${got.map((e) => e.seq).join(",")}, want 1,2`);
      check(ctx.walLog.records.length === 0, "recovery logged a warning or error");
      return "a seq jump after the safe point is a phantom, not SEQ_GAP";
    },
  },
  {
    name: "R1_FIRST_SEQ_NOT_ONE",
    clause: "seed 001 §3.3 R1",
    async run(ctx) {
      await writeImage(ctx.dir, [2, 3], 3);
      return expectFailHard(ctx, ctx.dir, "FIRST_SEQ_NOT_ONE");
    },
  },
  {
    name: "R2_SEQ_GAP",
    clause: "seed 001 §3.3 R2, S6",
    async run(ctx) {
      await writeImage(ctx.dir, [1, 2, 4], 4);
      return expectFailHard(ctx, ctx.dir, "SEQ_GAP");
    },
  },
  {
    name: "R3_SAFESEQ_GT_MAXSEQ",
    clause: "seed 001 §3.3 R3",
    async run(ctx) {
      await writeImage(ctx.dir, [1, 2], 5);
      return expectFailHard(ctx, ctx.dir, "SAFESEQ_GT_MAXSEQ");
    },
  },
  {
    name: "R4_SAFESEQ_NOT_FOUND",
    clause: "seed 001 §3.3 R4, OBS-2",
    async run(ctx) {
      await writeImage(ctx.dir, [], 3);
      return expectFailHard(ctx, ctx.dir, "SAFESEQ_NOT_FOUND");
    },
  },
  {
    name: "S5_WS2_CORRUPT_JSON",
    clause: "seed 001 §3.5 corrupt JSON fail-hard, S5, WS-2",
    async run(ctx) {
      await writeImage(ctx.dir, [1, badJsonFrame(), 3], 3);
      return expectFailHard(ctx, ctx.dir, "WAL_CORRUPT_INVALID_JSON");
    },
  },
  {
    name: "S4_SAFESEQ_CORRUPT",
    clause: "seed 001 §3.5 corrupt safe_seq, S4",
    async run(ctx) {
      await writeImage(ctx.dir, [1], new Uint8Array(7));
      return expectFailHard(ctx, ctx.dir, "SAFESEQ_CORRUPT");
    },
  },
  {
    name: "STRUCTURAL_TAIL",
    clause: "seed 001 §3.3 structural tail",
    async run(ctx) {
      const full = frameBytes(3);
      const cases: [string, Uint8Array][] = [["header", full.subarray(0, 2)], ["payload", full.subarray(0, full.byteLength - 3)]];
      for (const [name, torn] of cases) {
        const dir = join(ctx.dir, name);
        const wal = await writeImage(dir, [1, 2], 2, torn);
        const w = await open(ctx, dir);
        const got = await w.readFrom(0);
        await w.close();
        const size = await fileSize(walPaths(dir).wal);
        check(got.length === 2 && size === wal.byteLength - torn.byteLength, `torn ${name}: ${got.length} entries, ${size} bytes`);
      }
      check(ctx.walLog.records.length === 0, "a torn tail was logged as an error");
      return "torn header and torn payload truncated silently";
    },
  },
  {
    name: "FIRST_RUN_GENESIS",
    clause: "seed 001 §3.4 first-run",
    async run(ctx) {
      const w = await open(ctx);
      const mode = w.recovered.mode;
      await w.close();
      check(mode === "first_run", `mode ${mode}, want first_run`);
      check((await readSafe(ctx.dir)) === 0, "no genesis safe point 0 on disk");
      check(ctx.walLog.records.length === 0, "a first run logged a warning");
      return "empty directory opens silently; genesis safe_seq 0 written";
    },
  },
  {
    name: "S11_POS_IS_NOT_STATE",
    clause: "seed 001 §3.4 telemetry.pos excluded, S11",
    async run(ctx) {
      await mkdir(ctx.dir, { recursive: true });
      await writeFile(walPaths(ctx.dir).pos, encodeSafeSeq(7));
      const w = await open(ctx);
      const mode = w.recovered.mode;
      await w.close();
      check(mode === "first_run", `telemetry.pos alone made the directory steady (mode ${mode})`);
      const after = await nodeWalFs.readFile(walPaths(ctx.dir).pos);
      check(after !== undefined && Buffer.from(after).equals(Buffer.from(encodeSafeSeq(7))), "recovery changed telemetry.pos");
      return "telemetry.pos alone is still a first run, and recovery leaves it unchanged (a new WAL generation instead)";
    },
  },
  {
    name: "STEADY_STATE_SAFESEQ_MISSING",
    clause: "seed 001 §3.4 steady-state fail-hard, WS-4",
    async run(ctx) {
      const framesDir = join(ctx.dir, "frames");
      await writeImage(framesDir, [1, 2]);
      await expectFailHard(ctx, framesDir, "SAFESEQ_MISSING", { inspect: false });
      for (const other of ["lock.fingerprint", "activation", "runtime.db"]) {
        const dir = join(ctx.dir, other);
        await writeImage(dir, []);
        if (other === "activation") await mkdir(join(dir, other));
        else await writeFile(join(dir, other), "x");
        await expectFailHard(ctx, dir, "SAFESEQ_MISSING", { inspect: false });
      }
      return "SAFESEQ_MISSING with frames, and with lock.fingerprint / activation/ / runtime.db beside an empty WAL";
    },
  },
  {
    name: "S7_LEGACY_UPGRADE",
    clause: "seed 001 §3.4 legacy upgrade, S7",
    async run(ctx) {
      await writeImage(ctx.dir, [1, 2, 3]);
      const w = await open(ctx, ctx.dir, { [LEGACY_UPGRADE_ENV]: "1" });
      const got = await w.readFrom(0);
      await w.close();
      check(w.recovered.mode === "legacy_upgrade" && got.length === 3, `mode ${w.recovered.mode}, ${got.length} entries`);
      check(ctx.walLog.records.some((r) => r.level === "warn" && r.msg.startsWith("WAL_LEGACY_UPGRADE")), "no WAL_LEGACY_UPGRADE warning");
      check((await readSafe(ctx.dir)) === 3, "the safe point was not written at once");
      return `${LEGACY_UPGRADE_ENV}=1: WARN, 3 frames committed, safe_seq=3 written`;
    },
  },
  {
    name: "S12_OPERATOR_RESET",
    clause: "seed 001 §3.4.1 operator reset, S12",
    async run(ctx) {
      const env = { [OPERATOR_RESET_ENV]: "1" };
      await writeImage(ctx.dir, []);
      await writeFile(join(ctx.dir, "lock.fingerprint"), "x");
      const w = await open(ctx, ctx.dir, env);
      const seq = await w.append({ after: "reset" });
      await w.close();
      check(w.recovered.mode === "operator_reset" && seq === 1, `mode ${w.recovered.mode}, first seq ${seq}`);
      check(ctx.walLog.records.some((r) => r.level === "warn" && r.msg === "WAL_RESET_BY_OPERATOR"), "no WAL_RESET_BY_OPERATOR warning");
      const withFrames = join(ctx.dir, "with-frames");
      await writeImage(withFrames, [1]);
      await expectFailHard(ctx, withFrames, "SAFESEQ_MISSING", { env, inspect: false });
      return "empty WAL: WARN WAL_RESET_BY_OPERATOR, restart at seq 1; a WAL with frames is never reset";
    },
  },
  {
    name: "WS3_STALE_TMP",
    clause: "seed 001 WS-3",
    async run(ctx) {
      await writeImage(ctx.dir, [1, 2], 2);
      const p = walPaths(ctx.dir);
      await writeFile(p.safeSeqTmp, encodeSafeSeq(9));
      const w = await open(ctx);
      const last = w.lastSeq;
      await w.close();
      check(last === 2, `the stale temp was read: lastSeq ${last}`);
      check(!(await nodeWalFs.exists(p.safeSeqTmp)), "the stale telemetry.safe_seq.tmp was not removed");
      const lone = join(ctx.dir, "no-canonical");
      await writeImage(lone, [1]);
      await writeFile(walPaths(lone).safeSeqTmp, encodeSafeSeq(1));
      await expectFailHard(ctx, lone, "SAFESEQ_MISSING", { inspect: false });
      const kept = await nodeWalFs.readFile(walPaths(lone).safeSeqTmp);
      check(kept !== undefined && Buffer.from(kept).equals(Buffer.from(encodeSafeSeq(1))), "a stale temp without a canonical safe_seq was not left alone");
      return "stale temp beside a canonical safe_seq ignored and removed; without one, left alone";
    },
  },
  {
    name: "SAFESEQ_ACROSS_REOPEN",
    clause: "seed 001 §3.5 monotonicity, safe_seq after recovery",
    async run(ctx) {
      const w = await open(ctx);
      for (let k = 0; k < 3; k++) await w.append({ k });
      await w.close();
      const again = await open(ctx);
      const seq = await again.append({ k: 3 });
      await again.close();
      check(again.recovered.scan.maxSeq === 3 && seq === 4, `reopened at ${again.recovered.scan.maxSeq}, next seq ${seq}`);
      check((await readSafe(ctx.dir)) === 4, "safe_seq did not advance to 4");
      return "reopen continues at maxSeq+1; safe_seq 3 → 4";
    },
  },
  {
    name: "READ_ONLY_VERIFY",
    clause: "seed 002 step 3 verifier (read-only)",
    async run(ctx) {
      const wal = await writeImage(ctx.dir, [1, 2, 3], 2);
      const { entries, inspection } = await readCommitted(ctx.dir);
      const after = await nodeWalFs.readFile(walPaths(ctx.dir).wal);
      check(entries.map((e) => e.seq).join(",") === "1,2", `readCommitted = ${entries.map((e) => e.seq).join(",")}`);
      check(Buffer.compare(wal, Buffer.from(after ?? [])) === 0, "the read-only path modified the WAL");
      check(inspection.fail_hard === null && !inspection.invariants.R5_NO_PHANTOMS.pass && inspection.violations[0]?.code === "PHANTOM_BEYOND_SAFESEQ", `inspection ${JSON.stringify(inspection.violations)}`);
      return "committed entries read without recovery; phantom reported as R5, not fail-hard; nothing modified";
    },
  },
  {
    name: "LOCK_GOLDEN_FINGERPRINT",
    clause: "lock: RFC 8785 payload + BLAKE3-256 golden (b3sum)",
    async run(ctx) {
      const lock = parseLock(GOLDEN_LOCK_JSON);
      check(fingerprintPayload(lock) === GOLDEN_PAYLOAD, "canonical payload differs from the golden payload");
      const fp = await computeFingerprint(lock);
      check(fp === GOLDEN_FINGERPRINT && lock.behavioral_fingerprint === GOLDEN_FINGERPRINT, `fingerprint ${fp}, want ${GOLDEN_FINGERPRINT}`);
      await verifyLock(lock);
      // Through the cell's file system: serialised, written durably, read back.
      const path = join(ctx.dir, "autonomy.lock.json");
      await writeFileAtomic(path, serializeLock(lock));
      const back = parseLock(await readFile(path));
      await verifyLock(back);
      check((await computeFingerprint(back)) === GOLDEN_FINGERPRINT, "fingerprint changed through serializeLock + disk");
      return `${GOLDEN_FINGERPRINT.slice(0, 19)}… matches, also after a disk round trip`;
    },
  },
  {
    name: "LOCK_FINGERPRINT_MISMATCH",
    clause: "lock: verify detects a changed lock",
    async run() {
      const lock = parseLock(GOLDEN_LOCK_JSON);
      const tampered = { ...lock, agent_artifact: { ...lock.agent_artifact, ref: "registry.example.com/fleet/arm-agent:1.4.3" } };
      let err: unknown;
      try {
        await verifyLock(tampered);
      } catch (e) {
        err = e;
      }
      check(err instanceof LockError && err.code === "LOCK_FINGERPRINT_MISMATCH" && err.exitCode === 4, `verifyLock on a changed lock: ${String(err)}`);
      return "LOCK_FINGERPRINT_MISMATCH (exit 4)";
    },
  },
  {
    name: "BLAKE3_KNOWN_ANSWERS",
    clause: "BLAKE3 test vectors",
    async run(ctx) {
      for (const v of BLAKE3_VECTORS) {
        const hex = await blake3(v.input(), 256);
        check(hex === v.hex, `BLAKE3(${v.name}) = ${hex}, want ${v.hex}`);
      }
      const last = BLAKE3_VECTORS[BLAKE3_VECTORS.length - 1];
      check(last !== undefined, "no vectors");
      const path = join(ctx.dir, "vector.bin");
      await mkdir(ctx.dir, { recursive: true });
      await writeFile(path, last.input());
      const streamed = await hashInputFile(path);
      check(streamed === `blake3:${last.hex}`, `hashInputFile streamed ${streamed}`);
      return `${BLAKE3_VECTORS.length} vectors; streamed from disk too`;
    },
  },
  {
    name: "SEGMENTS_SEAL_RECLAIM",
    clause: "docs/wal.md bounded disk: sealing, reclamation behind the confirmed position, recovery across segments",
    async run(ctx) {
      let confirmed = 0;
      const w = await open(ctx, ctx.dir, NO_ENV, { segmentBytes: 256, confirmed: () => Promise.resolve(confirmed) });
      for (let k = 1; k <= 40; k++) await w.append({ k, pad: "s".repeat(40) });
      const sealed = w.sealedSegments.length;
      confirmed = 20;
      const r = await w.reclaim(confirmed);
      await w.close();
      check(sealed >= 5, `only ${sealed} sealed segments for 40 entries of ~70 bytes at 256-byte segments`);
      check(r.base > 0 && r.base <= 20, `base ${r.base} after reclaiming up to 20`);
      const again = await open(ctx);
      const seqs = (await again.readFrom(1)).map((e) => e.seq);
      await again.close();
      check(seqs[0] === r.base + 1 && seqs[seqs.length - 1] === 40 && seqs.length === 40 - r.base, `reopened: seqs ${seqs[0] ?? "none"}..${seqs[seqs.length - 1] ?? "none"} (${seqs.length})`);
      const inspection = await inspectWalDir(ctx.dir);
      check(inspection.fail_hard === null, `inspectWalDir says ${String(inspection.fail_hard)}`);
      return `${sealed} segments sealed, ${r.segments} reclaimed (base ${r.base}), reopened at ${r.base + 1}..40, inspectWalDir clean`;
    },
  },
  {
    name: "SEGMENT_INVALID_FAILS_HARD",
    clause: "docs/wal.md bounded disk: a sealed segment that lost bytes is lost committed data",
    async run(ctx) {
      const w = await open(ctx, ctx.dir, NO_ENV, { segmentBytes: 256 });
      for (let k = 1; k <= 12; k++) await w.append({ k, pad: "s".repeat(40) });
      const first = w.sealedSegments[0];
      await w.close();
      check(first !== undefined, "nothing was sealed");
      const bytes = (await nodeWalFs.readFile(first.path)) ?? new Uint8Array(0);
      await writeFile(first.path, bytes.subarray(0, bytes.byteLength - 3));
      let cause: unknown;
      try {
        await (await open(ctx)).close();
      } catch (e) {
        cause = e instanceof WalFailHard ? e.code : e;
      }
      check(cause === "SEGMENT_INVALID", `reopening gave ${String(cause)}`);
      const inspection = await inspectWalDir(ctx.dir);
      check(inspection.fail_hard === "SEGMENT_INVALID", `inspectWalDir says ${String(inspection.fail_hard)}`);
      return "a truncated sealed segment fails hard with SEGMENT_INVALID; inspectWalDir agrees";
    },
  },
  {
    name: "JCS_RFC8785",
    clause: "RFC 8785 canonical JSON",
    run() {
      const c = canonicalJson(JSON.parse(JCS_RFC8785_EXAMPLE.input));
      check(c === JCS_RFC8785_EXAMPLE.canonical, `canonical form ${c}`);
      check(canonicalJson(JSON.parse(c)) === c, "canonical form is not a fixed point");
      const sorted = canonicalJson(JSON.parse(JCS_RFC8785_SORTING.input));
      // Compared by position in the text: JSON.parse would move the integer-like key "1" to the front.
      const positions = JCS_RFC8785_SORTING.keyOrder.map((k) => sorted.indexOf(`${JSON.stringify(k)}:`));
      check(positions.every((p, i) => p >= 0 && (i === 0 || p > (positions[i - 1] ?? -1))), `key order ${sorted}`);
      let err: unknown;
      try {
        canonicalJson({ n: Number.NaN });
      } catch (e) {
        err = e;
      }
      check(err instanceof LockError && err.code === "LOCK_NOT_CANONICALIZABLE", "NaN was canonicalised");
      return Promise.resolve("RFC 8785 §3.2.3 example and key sorting; fixed point; NaN rejected");
    },
  },
];

/** Runs every self-test in its own directory under `workDir`; logs each verdict. */
export async function runSelfTests(workDir: string, log: CellLog, tests: readonly SelfTest[] = SELF_TESTS): Promise<SelfTestResult[]> {
  const results: SelfTestResult[] = [];
  for (const [i, t] of tests.entries()) {
    const dir = join(workDir, `${String(i + 1).padStart(2, "0")}-${t.name}`);
    const walLog = log.walLogger(() => `self-test ${t.name}`);
    const t0 = performance.now();
    let r: SelfTestResult;
    try {
      const msg = await t.run({ dir, walLog });
      r = { name: t.name, clause: t.clause, pass: true, msg, ms: elapsed(t0) };
    } catch (e) {
      r = { name: t.name, clause: t.clause, pass: false, msg: e instanceof CheckFailed ? e.message : `unexpected error: ${e instanceof Error ? e.message : String(e)}`, ms: elapsed(t0) };
      if (e instanceof WalFailHard) r.fail_hard = e.code;
    }
    log.line(`  ${r.pass ? "PASS" : "FAIL"} ${r.name} [${r.clause}] ${r.msg} (${r.ms} ms)`);
    results.push(r);
  }
  return results;
}
