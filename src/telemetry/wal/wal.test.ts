/**
 * Seed 001, clause by clause. Each test is named after the clause or stop
 * condition it proves (S1–S12, R1–R5, WS-1..WS-4, OBS-4) so the seed's matrix
 * maps onto this file; S8/WS-1 and S9 record the real file-system calls. Real files in temp dirs; the power-loss harness lives in
 * test/telemetry/wal-crash-harness.test.ts.
 */
import { describe, expect, it, beforeEach } from "vitest";
import { mkdtemp, readFile, writeFile, appendFile, stat, mkdir, truncate } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Wal, WalError, WalFailHard, confirmedIn, encodeFrame, encodeSafeSeq, decodeSafeSeq, walPaths, nodeWalFs, encodePosition, readGeneration } from "./index.js";
import type { WalFs, WalLogger } from "./index.js";
import { generationPath, LEGACY_GENERATION } from "./generation.js";
import { scanFrames } from "./scan.js";

interface Captured {
  level: "warn" | "error";
  msg: string;
  obj: Record<string, unknown>;
}

function captureLog(): WalLogger & { records: Captured[] } {
  const records: Captured[] = [];
  return {
    records,
    warn: (obj, msg) => void records.push({ level: "warn", msg, obj }),
    error: (obj, msg) => void records.push({ level: "error", msg, obj }),
  };
}

const frame = (seq: number, event: Record<string, unknown> = { n: seq }): Buffer => Buffer.from(encodeFrame({ seq, event }));

/** The real file system, recording each call's start and end (`op:file:start|end`), so tests check what the WAL really asks of it. */
function recordingFs(ops: string[]): WalFs {
  const name = (path: string): string => path.split("/").at(-1) ?? path;
  const rec = async <T>(op: string, run: () => Promise<T>): Promise<T> => {
    ops.push(`${op}:start`);
    const r = await run();
    ops.push(`${op}:end`);
    return r;
  };
  return {
    ...nodeWalFs,
    async openFile(path) {
      const f = await nodeWalFs.openFile(path);
      return { ...f, read: (pos, len) => f.read(pos, len), size: () => f.size(), truncate: (n) => f.truncate(n), close: () => f.close(),
        write: (data, pos) => rec(`write:${name(path)}`, () => f.write(data, pos)), sync: () => rec(`sync:${name(path)}`, () => f.sync()) };
    },
    writeFileSynced: (path, data) => rec(`writeSynced:${name(path)}`, () => nodeWalFs.writeFileSynced(path, data)),
    rename: (from, to) => rec(`rename:${name(from)}>${name(to)}`, () => nodeWalFs.rename(from, to)),
    fsyncDir: (d) => rec(`fsyncDir:${name(d)}`, () => nodeWalFs.fsyncDir(d)),
  };
}

async function causeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof WalFailHard) {
      expect(e.exitCode).toBe(5);
      return e.code;
    }
    throw e;
  }
  return "OPENED";
}

describe("telemetry WAL (seed 001)", () => {
  let dir: string;
  let p: ReturnType<typeof walPaths>;
  let log: ReturnType<typeof captureLog>;
  const open = (env: Record<string, string> = {}, extra: Partial<Parameters<typeof Wal.open>[1]> = {}) => Wal.open(dir, { log, env, ...extra });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "wal-"));
    p = walPaths(dir);
    log = captureLog();
  });

  async function writeWal(frames: Buffer[], safe?: number): Promise<void> {
    await writeFile(p.wal, Buffer.concat(frames));
    if (safe !== undefined) await writeFile(p.safeSeq, encodeSafeSeq(safe));
  }

  describe("§3.3 frame format", () => {
    it("writes [4-byte big-endian length][JSON payload] with no newline delimiter", async () => {
      const wal = await open();
      await wal.append({ kind: "decision", ok: true });
      await wal.close();
      const bytes = await readFile(p.wal);
      const len = bytes.readUInt32BE(0);
      expect(len).toBe(bytes.length - 4);
      expect(JSON.parse(bytes.subarray(4).toString("utf8"))).toEqual({ seq: 1, event: { kind: "decision", ok: true } });
      expect(bytes.includes(0x0a)).toBe(false);
    });

    it("repairs a partial frame at EOF (torn header or payload) by truncation, silently", async () => {
      await writeWal([frame(1), frame(2), frame(3).subarray(0, 7)], 2);
      const wal = await open();
      expect((await wal.readFrom(1)).map((e) => e.seq)).toEqual([1, 2]);
      expect(log.records.filter((r) => r.level === "error")).toEqual([]);
      await wal.close();
      expect((await stat(p.wal)).size).toBe(frame(1).length + frame(2).length);
    });
  });

  describe("R1 first frame seq must be 1", () => {
    it("fails hard with FIRST_SEQ_NOT_ONE", async () => {
      await writeWal([frame(2), frame(3)], 3);
      expect(await causeOf(open())).toBe("FIRST_SEQ_NOT_ONE");
    });
  });

  describe("R2 seq contiguous in the committed range", () => {
    it("fails hard with SEQ_GAP on a gap before the safe point (S6)", async () => {
      await writeWal([frame(1), frame(2), frame(4)], 4);
      expect(await causeOf(open())).toBe("SEQ_GAP");
    });
    it("treats a gap beyond the safe point as a phantom, not an error", async () => {
      await writeWal([frame(1), frame(2), frame(5)], 2);
      const wal = await open();
      expect(wal.lastSeq).toBe(2);
      await wal.close();
    });
  });

  describe("R3 safe_seq ≤ maxSeq", () => {
    it("fails hard with SAFESEQ_GT_MAXSEQ (a reorder bug would be detected)", async () => {
      await writeWal([frame(1), frame(2)], 5);
      expect(await causeOf(open())).toBe("SAFESEQ_GT_MAXSEQ");
    });
  });

  describe("R4 the frame at safe_seq exists", () => {
    it("fails hard with SAFESEQ_NOT_FOUND on an empty WAL with a safe point (OBS-2 asymmetry)", async () => {
      await writeWal([], 3);
      expect(await causeOf(open())).toBe("SAFESEQ_NOT_FOUND");
    });
  });

  describe("R5 / S2 / S3 no phantoms: recovery truncates to the safe point, not the structural boundary", () => {
    it("discards complete frames beyond safe_seq (the S3 window: WAL fsynced, safe_seq not yet written)", async () => {
      await writeWal([frame(1), frame(2), frame(3)], 2);
      const wal = await open();
      expect(wal.recovered.scan.phantoms).toBe(1);
      expect((await wal.readFrom(0)).map((e) => e.seq)).toEqual([1, 2]);
      await wal.close();
      expect((await stat(p.wal)).size).toBe(frame(1).length + frame(2).length);
    });
    it("continues with seq = maxSeq + 1 after recovery", async () => {
      await writeWal([frame(1), frame(2), frame(3)], 2);
      const wal = await open();
      expect(await wal.append({ after: "recovery" })).toBe(3);
      expect((await wal.readFrom(3))[0]?.event).toEqual({ after: "recovery" });
      await wal.close();
    });
  });

  describe("S1 safe_seq is written after every append, and survives reopen", () => {
    it("advances the on-disk safe point per entry, monotonically, never beyond maxSeq", async () => {
      const wal = await open();
      const seen: number[] = [];
      for (let i = 1; i <= 5; i++) {
        await wal.append({ i });
        seen.push(decodeSafeSeq(await readFile(p.safeSeq)) ?? -1);
      }
      expect(seen).toEqual([1, 2, 3, 4, 5]);
      await wal.close();
      const again = await open();
      expect(again.lastSeq).toBe(5);
      await again.close();
    });
  });

  describe("§3.5 safe_seq encoding", () => {
    it("is 8-byte little-endian (byte 0 holds the low byte)", async () => {
      const wal = await open();
      await wal.append({});
      await wal.close();
      const b = await readFile(p.safeSeq);
      expect([...b]).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
    });
    it("S4: a wrong-length safe_seq fails hard (never tolerated)", async () => {
      await writeWal([frame(1)]);
      await writeFile(p.safeSeq, Buffer.from([1, 0, 0, 0]));
      expect(await causeOf(open())).toBe("SAFESEQ_CORRUPT");
    });
    it("OBS-1: safe_seq = 0 is a valid committed value (everything after it is phantom)", async () => {
      await writeWal([frame(1), frame(2)], 0);
      const wal = await open();
      expect(wal.lastSeq).toBe(0);
      expect(await wal.readFrom(0)).toEqual([]);
      await wal.close();
    });
  });

  describe("S5 / WS-2 corrupt JSON in a structurally complete committed frame", () => {
    it("fails hard with WAL_CORRUPT_INVALID_JSON, not SAFESEQ_GT_MAXSEQ", async () => {
      const bad = Buffer.concat([Buffer.from([0, 0, 0, 5]), Buffer.from("{oops")]);
      await writeWal([frame(1), bad, frame(3)], 3);
      expect(await causeOf(open())).toBe("WAL_CORRUPT_INVALID_JSON");
    });
    it("fails hard on JSON that is not an entry object (an array) in the committed range", async () => {
      const arr = Buffer.from("[1,2]");
      await writeWal([frame(1), Buffer.concat([Buffer.from([0, 0, 0, arr.length]), arr])], 2);
      expect(await causeOf(open())).toBe("WAL_CORRUPT_INVALID_JSON");
    });
    it("treats garbage beyond the safe point as a phantom (a torn unsynced write)", async () => {
      const zeros = Buffer.concat([Buffer.from([0, 0, 0, 8]), Buffer.alloc(8)]);
      await writeWal([frame(1), zeros], 1);
      const wal = await open();
      expect(wal.lastSeq).toBe(1);
      await wal.close();
    });
    it("ReadFrom fails hard if a committed frame changes on disk after recovery", async () => {
      const wal = await open();
      await wal.append({ a: 1 });
      const f = await readFile(p.wal);
      f[6] = "X".charCodeAt(0);
      await writeFile(p.wal, f);
      await expect(wal.readFrom(1)).rejects.toMatchObject({ code: "WAL_CORRUPT_INVALID_JSON" });
      await wal.close();
    });
  });

  describe("§3.3 fail-hard log", () => {
    it("logs WAL_RECOVERY_FAIL_HARD once, structured, with cause and dir", async () => {
      await writeWal([frame(2)], 2);
      await causeOf(open());
      const errors = log.records.filter((r) => r.level === "error");
      expect(errors).toHaveLength(1);
      expect(errors[0]?.msg).toBe("WAL_RECOVERY_FAIL_HARD");
      expect(errors[0]?.obj).toMatchObject({ cause: "FIRST_SEQ_NOT_ONE", dir });
    });
  });

  describe("§3.4 steady-state detection", () => {
    it("first run: no safe_seq and no other state opens silently", async () => {
      const wal = await open();
      expect(wal.recovered.mode).toBe("first_run");
      expect(log.records).toEqual([]);
      await wal.close();
    });
    it("S11: telemetry.pos alone is not state (it is never used for recovery)", async () => {
      await writeFile(p.pos, encodeSafeSeq(7));
      const wal = await open();
      expect(wal.recovered.mode).toBe("first_run");
      await wal.close();
    });
    it("S11: a first run leaves a telemetry.pos of an earlier WAL byte for byte unchanged and starts a new generation instead", async () => {
      const old = encodePosition({ seq: 7, generation: "ab".repeat(16) });
      await writeFile(p.pos, old);
      const wal = await open();
      await wal.close();
      expect(await readFile(p.pos)).toEqual(Buffer.from(old));
      expect(wal.generation).toMatch(/^[0-9a-f]{32}$/);
      expect(wal.generation).not.toBe("ab".repeat(16));
      expect(wal.generation).not.toBe(LEGACY_GENERATION);
      expect(log.records).toEqual([]);
    });
    it("a lone torn first frame is a first-run crash artifact, not state", async () => {
      await writeFile(p.wal, frame(1).subarray(0, 6));
      const wal = await open();
      expect(wal.recovered.mode).toBe("first_run");
      expect(wal.lastSeq).toBe(0);
      await wal.close();
    });
    it("steady (WAL has frames) + safe_seq missing fails hard", async () => {
      await writeWal([frame(1)]);
      expect(await causeOf(open())).toBe("SAFESEQ_MISSING");
    });
    it.each(["lock.fingerprint", "runtime.db"])("steady (other state %s exists) + safe_seq missing fails hard", async (name) => {
      await writeFile(join(dir, name), "x");
      expect(await causeOf(open())).toBe("SAFESEQ_MISSING");
    });
    it("steady (activation/ exists) + safe_seq missing fails hard", async () => {
      await mkdir(join(dir, "activation"));
      expect(await causeOf(open())).toBe("SAFESEQ_MISSING");
    });
    it("WS-4: state registered by the caller counts too (extension protocol)", async () => {
      const state = join(dir, "..", `${Date.now()}-node-state.json`);
      await writeFile(state, "{}");
      expect(await causeOf(open({}, { otherState: [state] }))).toBe("SAFESEQ_MISSING");
    });
  });

  describe("S7 legacy upgrade (AUTONOMYOPS_WAL_LEGACY_UPGRADE=1)", () => {
    it("opens a steady WAL without safe_seq with a WARN, keeps every complete frame, and writes the safe point", async () => {
      await writeWal([frame(1), frame(2), frame(3).subarray(0, 5)]);
      const wal = await open({ AUTONOMYOPS_WAL_LEGACY_UPGRADE: "1" });
      expect(wal.recovered.mode).toBe("legacy_upgrade");
      expect(wal.lastSeq).toBe(2);
      expect(log.records.some((r) => r.level === "warn" && r.msg.startsWith("WAL_LEGACY_UPGRADE"))).toBe(true);
      await wal.close();
      expect(decodeSafeSeq(await readFile(p.safeSeq))).toBe(2);
      expect((await stat(p.wal)).size).toBe(frame(1).length + frame(2).length);
    });
  });

  describe("legacy upgrade and operator reset together, and a legacy upgrade of a WAL that has a generation", () => {
    it("both override variables set: refused (WAL_OVERRIDE_AMBIGUOUS), neither wins, nothing is written", async () => {
      await writeFile(join(dir, "runtime.db"), "x");
      const e: unknown = await open({ AUTONOMYOPS_WAL_LEGACY_UPGRADE: "1", AUTONOMYOPS_WAL_OPERATOR_RESET: "1" }).then(() => "opened", (err: unknown) => err);
      expect(e).toBeInstanceOf(WalError);
      expect((e as WalError).code).toBe("WAL_OVERRIDE_AMBIGUOUS");
      expect(existsSync(p.safeSeq)).toBe(false);
      expect(existsSync(generationPath(dir))).toBe(false);
    });
    it("a legacy upgrade where a generation record exists starts a fresh generation: the old position never covers the new seqs", async () => {
      const first = await open();
      for (let i = 0; i < 5; i++) await first.append({ old: i });
      await first.close();
      const oldPos = { seq: 5, generation: first.generation };
      await writeFile(p.pos, encodePosition(oldPos));
      const { unlink } = await import("node:fs/promises");
      await unlink(p.wal);
      await unlink(p.safeSeq);
      await writeFile(join(dir, "lock.fingerprint"), "x");
      const up = await open({ AUTONOMYOPS_WAL_LEGACY_UPGRADE: "1" });
      expect(up.recovered.mode).toBe("legacy_upgrade");
      for (let i = 0; i < 5; i++) await up.append({ fresh: i });
      await up.close();
      expect(up.generation).not.toBe(first.generation);
      expect(up.generation).not.toBe(LEGACY_GENERATION);
      expect((await readGeneration(nodeWalFs, dir)).id).toBe(up.generation);
      expect(confirmedIn(oldPos, await readGeneration(nodeWalFs, dir))).toBe(0);
    });
    it("a legacy upgrade of a WAL that truly predates generations (no record) keeps the legacy generation", async () => {
      await writeWal([frame(1), frame(2)]);
      const up = await open({ AUTONOMYOPS_WAL_LEGACY_UPGRADE: "1" });
      await up.close();
      expect(up.generation).toBe(LEGACY_GENERATION);
      expect(confirmedIn({ seq: 2, generation: LEGACY_GENERATION }, await readGeneration(nodeWalFs, dir))).toBe(2);
    });
  });

  describe("generations (S11: recovery never changes telemetry.pos)", () => {
    it("the generation lives beside the WAL directory, survives reopening, and is the same one recovery reports", async () => {
      const first = await open();
      await first.append({ a: 1 });
      await first.close();
      const again = await open();
      await again.close();
      expect(again.generation).toBe(first.generation);
      expect((await readGeneration(nodeWalFs, dir)).id).toBe(first.generation);
      expect(generationPath(dir)).toBe(`${dir}.generation`);
      expect(existsSync(join(dir, `${dir.split("/").at(-1) ?? ""}.generation`))).toBe(false);
    });
    it("S11 + S12: an operator reset starts a new generation and leaves telemetry.pos unchanged", async () => {
      const first = await open();
      await first.close();
      const pos = encodePosition({ seq: 0, generation: first.generation });
      await writeFile(p.pos, pos);
      await writeFile(join(dir, "runtime.db"), "x");
      const { unlink } = await import("node:fs/promises");
      await unlink(p.safeSeq);
      const reset = await open({ AUTONOMYOPS_WAL_OPERATOR_RESET: "1" });
      await reset.close();
      expect(reset.recovered.mode).toBe("operator_reset");
      expect(reset.generation).not.toBe(first.generation);
      expect(await readFile(p.pos)).toEqual(Buffer.from(pos));
    });
    it("a WAL from before generations (no generation file) is the legacy generation and nothing is written for it", async () => {
      await writeWal([frame(1)], 1);
      const wal = await open();
      await wal.close();
      expect(wal.generation).toBe(LEGACY_GENERATION);
      expect(existsSync(generationPath(dir))).toBe(false);
    });
    it("a corrupt generation file fails hard (WAL_GENERATION_CORRUPT): never guess whose positions to follow", async () => {
      await writeWal([frame(1)], 1);
      await writeFile(generationPath(dir), "{not json");
      expect(await causeOf(open())).toBe("WAL_GENERATION_CORRUPT");
    });
  });

  describe("OBS-4 legacy upgrade of a gapped legacy WAL", () => {
    const gapped = (): Buffer[] => [frame(1), frame(2), frame(5), frame(6), frame(9)];
    it("accepts it: every complete legacy frame is committed, no gap check, each gap logged at WARNING", async () => {
      await writeWal([...gapped(), frame(10).subarray(0, 5)]);
      const wal = await open({ AUTONOMYOPS_WAL_LEGACY_UPGRADE: "1" });
      expect(wal.lastSeq).toBe(9);
      expect((await wal.readFrom(1)).map((e) => e.seq)).toEqual([1, 2, 5, 6, 9]);
      expect(log.records.filter((r) => r.level === "warn" && r.msg.startsWith("WAL_LEGACY_GAP")).map((r) => [r.obj.after, r.obj.seq])).toEqual([[2, 5], [6, 9]]);
      expect(await wal.append({ after: "upgrade" })).toBe(10);
      await wal.close();
      expect(decodeSafeSeq(await readFile(p.safeSeq))).toBe(10);
    });
    it("the upgraded WAL keeps opening on later restarts without the variable, gaps and all", async () => {
      await writeWal(gapped());
      const up = await open({ AUTONOMYOPS_WAL_LEGACY_UPGRADE: "1" });
      await up.append({ n: 10 });
      await up.close();
      for (let restart = 0; restart < 2; restart++) {
        const wal = await open();
        expect((await wal.readFrom(1)).map((e) => e.seq)).toEqual([1, 2, 5, 6, 9, 10]);
        await wal.close();
      }
      expect(await readGeneration(nodeWalFs, dir)).toMatchObject({ legacyThrough: 9, legacyGaps: [{ after: 2, seq: 5 }, { after: 6, seq: 9 }] });
    });
    it("frames after the accepted legacy range are checked as strictly as ever (a new gap fails hard)", async () => {
      await writeWal(gapped());
      const up = await open({ AUTONOMYOPS_WAL_LEGACY_UPGRADE: "1" });
      await up.close();
      await writeWal([...gapped(), frame(10), frame(12)], 12);
      expect(await causeOf(open())).toBe("SEQ_GAP");
    });
    it("a legacy WAL whose seqs go backwards is still refused (SEQ_GAP): that is not a gap, seqs would repeat", async () => {
      await writeWal([frame(1), frame(3), frame(2)]);
      expect(await causeOf(open({ AUTONOMYOPS_WAL_LEGACY_UPGRADE: "1" }))).toBe("SEQ_GAP");
    });
  });

  describe("S12 operator reset (AUTONOMYOPS_WAL_OPERATOR_RESET=1)", () => {
    it("emits WAL_RESET_BY_OPERATOR and starts clean at seq 1 when the WAL is empty", async () => {
      await writeFile(join(dir, "runtime.db"), "x");
      const wal = await open({ AUTONOMYOPS_WAL_OPERATOR_RESET: "1" });
      expect(log.records.map((r) => r.msg)).toContain("WAL_RESET_BY_OPERATOR");
      expect(await wal.append({ first: true })).toBe(1);
      await wal.close();
    });
    it("fails hard without the variable", async () => {
      await writeFile(join(dir, "runtime.db"), "x");
      expect(await causeOf(open())).toBe("SAFESEQ_MISSING");
    });
    it("does not reset a WAL that has frames", async () => {
      await writeWal([frame(1)]);
      expect(await causeOf(open({ AUTONOMYOPS_WAL_OPERATOR_RESET: "1" }))).toBe("SAFESEQ_MISSING");
    });
  });

  describe("S8 / WS-1 ordering: WAL fsync completes before the safe point moves", () => {
    it("WS-1: the WAL's fsync has returned before the safe-point temp is written, for every append (file-system calls, not hooks)", async () => {
      const ops: string[] = [];
      const wal = await open({}, { fs: recordingFs(ops), lock: false });
      ops.length = 0;
      for (let i = 0; i < 3; i++) {
        await wal.append({ i });
        expect(ops).toEqual([
          "write:telemetry.wal:start", "write:telemetry.wal:end", "sync:telemetry.wal:start", "sync:telemetry.wal:end",
          "writeSynced:telemetry.safe_seq.tmp:start", "writeSynced:telemetry.safe_seq.tmp:end",
          "rename:telemetry.safe_seq.tmp>telemetry.safe_seq:start", "rename:telemetry.safe_seq.tmp>telemetry.safe_seq:end",
          `fsyncDir:${dir.split("/").at(-1) ?? ""}:start`, `fsyncDir:${dir.split("/").at(-1) ?? ""}:end`,
        ]);
        ops.length = 0;
      }
      await wal.close();
    });
    it("the test hooks fire in [sync, safe] order per commit", async () => {
      const order: string[] = [];
      const wal = await open({}, { hooks: { onWalSynced: () => order.push("sync"), onSafeSeqAdvanced: () => order.push("safe") } });
      await wal.append({});
      expect(order).toEqual(["sync", "safe"]);
      await wal.close();
    });
    it("group commit: concurrent appends share one fsync and one safe-point update, each resolving with its own seq", async () => {
      const order: string[] = [];
      const wal = await open({}, { hooks: { onWalSynced: (s) => order.push(`sync:${s}`), onSafeSeqAdvanced: (s) => order.push(`safe:${s}`) } });
      await wal.append({ warm: true });
      order.length = 0;
      const seqs = await Promise.all(Array.from({ length: 50 }, (_, i) => wal.append({ i })));
      expect(seqs).toEqual(Array.from({ length: 50 }, (_, i) => i + 2));
      expect(order.length).toBeLessThan(50 * 2);
      for (let i = 0; i < order.length; i += 2) {
        expect(order[i]?.startsWith("sync:")).toBe(true);
        expect(order[i + 1]).toBe(order[i]?.replace("sync", "safe"));
      }
      expect(order.at(-1)).toBe("safe:51");
      await wal.close();
    });
  });

  describe("S9 dir fsync after the safe_seq rename", () => {
    it("S9: append resolves only after the directory fsync that follows the rename has returned", async () => {
      const ops: string[] = [];
      const wal = await open({}, { fs: recordingFs(ops), lock: false });
      ops.length = 0;
      await wal.append({ x: 1 }).then(() => ops.push("resolved"));
      const rename = ops.indexOf("rename:telemetry.safe_seq.tmp>telemetry.safe_seq:end");
      const dirSync = ops.lastIndexOf(`fsyncDir:${dir.split("/").at(-1) ?? ""}:end`);
      expect(rename).toBeGreaterThan(-1);
      expect(dirSync).toBeGreaterThan(rename);
      expect(ops.at(-1)).toBe("resolved");
      expect(ops.slice(rename + 1, -1)).toEqual([`fsyncDir:${dir.split("/").at(-1) ?? ""}:start`, `fsyncDir:${dir.split("/").at(-1) ?? ""}:end`]);
      await wal.close();
    });
  });

  describe("§3.5 temp-then-rename", () => {
    it("WS-3: removes a stale safe_seq.tmp when the canonical safe_seq exists", async () => {
      await writeWal([frame(1)], 1);
      await writeFile(p.safeSeqTmp, encodeSafeSeq(9));
      const wal = await open();
      await wal.close();
      expect(existsSync(p.safeSeqTmp)).toBe(false);
      expect(decodeSafeSeq(await readFile(p.safeSeq))).toBe(1);
    });
    it("WS-3: open with the canonical safe_seq present removes a stale temp through an unlink (recorded)", async () => {
      await writeWal([frame(1)], 1);
      await writeFile(p.safeSeqTmp, encodeSafeSeq(9));
      const unlinked: string[] = [];
      const wal = await open({}, { fs: { ...nodeWalFs, unlink: (path) => (unlinked.push(path), nodeWalFs.unlink(path)) }, lock: false });
      await wal.close();
      expect(unlinked).toEqual([p.safeSeqTmp]);
    });
    it("WS-3: a first run with a stale temp and no canonical safe_seq never unlinks it, and still writes the genesis safe point through it (§3.5 path)", async () => {
      await writeFile(p.safeSeqTmp, encodeSafeSeq(9));
      const unlinked: string[] = [];
      const ops: string[] = [];
      const fs = recordingFs(ops);
      const wal = await open({}, { fs: { ...fs, unlink: (path) => (unlinked.push(path), nodeWalFs.unlink(path)) }, lock: false });
      expect(wal.lastSeq).toBe(0);
      await wal.close();
      expect(unlinked).toEqual([]);
      expect(ops).toContain("writeSynced:telemetry.safe_seq.tmp:end");
      expect(ops).toContain("rename:telemetry.safe_seq.tmp>telemetry.safe_seq:end");
      expect(decodeSafeSeq(await readFile(p.safeSeq))).toBe(0);
      expect(existsSync(p.safeSeqTmp)).toBe(false);
      expect(log.records).toEqual([]);
    });
    it("WS-3: after a first run with a stale temp, other node state appearing does not make the next open fail (SAFESEQ_MISSING)", async () => {
      await writeFile(p.safeSeqTmp, encodeSafeSeq(9));
      await (await open()).close();
      await writeFile(join(dir, "lock.fingerprint"), "x");
      const again = await open();
      expect(again.recovered.mode).toBe("safe_seq");
      expect(await again.append({ first: true })).toBe(1);
      await again.close();
    });
    it("WS-3: leaves a stale safe_seq.tmp alone when the canonical file is missing in steady state (fail-hard keeps it for analysis)", async () => {
      await writeWal([frame(1)]);
      await writeFile(p.safeSeqTmp, encodeSafeSeq(1));
      expect(await causeOf(open())).toBe("SAFESEQ_MISSING");
      expect(await readFile(p.safeSeqTmp)).toEqual(Buffer.from(encodeSafeSeq(1)));
    });
    it("WS-3: a legacy upgrade with a stale temp never unlinks it and records the upgrade's safe point through it", async () => {
      await writeWal([frame(1), frame(2)]);
      await writeFile(p.safeSeqTmp, encodeSafeSeq(5));
      const unlinked: string[] = [];
      const wal = await open({ AUTONOMYOPS_WAL_LEGACY_UPGRADE: "1" }, { fs: { ...nodeWalFs, unlink: (path) => (unlinked.push(path), nodeWalFs.unlink(path)) }, lock: false });
      expect(wal.lastSeq).toBe(2);
      await wal.close();
      expect(unlinked).toEqual([]);
      expect(decodeSafeSeq(await readFile(p.safeSeq))).toBe(2);
    });
    it("first run writes a genesis safe point 0, so a safe_seq lost before the first append is still detected", async () => {
      const wal = await open();
      await wal.close();
      expect(decodeSafeSeq(await readFile(p.safeSeq))).toBe(0);
      await writeFile(join(dir, "runtime.db"), "x");
      const { unlink } = await import("node:fs/promises");
      await unlink(p.safeSeq);
      expect(await causeOf(open())).toBe("SAFESEQ_MISSING");
    });
    it("a crash after the temp write but before the rename keeps the old safe point (atomic rename)", async () => {
      await writeWal([frame(1), frame(2)], 1);
      await writeFile(p.safeSeqTmp, encodeSafeSeq(2));
      const wal = await open();
      expect(wal.lastSeq).toBe(1);
      await wal.close();
    });
  });

  describe("malformed input never crashes recovery", () => {
    it("a length header pointing past EOF is a torn tail", async () => {
      await writeWal([frame(1), Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2])], 1);
      const wal = await open();
      expect(wal.lastSeq).toBe(1);
      await wal.close();
    });
    it("garbage instead of a WAL with a safe point fails hard, deleting nothing", async () => {
      await writeFile(p.wal, Buffer.from("this is not a WAL at all, just text"));
      await writeFile(p.safeSeq, encodeSafeSeq(1));
      const before = await readFile(p.wal);
      expect(await causeOf(open())).not.toBe("OPENED");
      expect(await readFile(p.wal)).toEqual(before);
    });
    it("scanFrames is pure: it never throws anything but WalFailHard on random bytes", () => {
      for (let i = 0; i < 2000; i++) {
        const bytes = Buffer.from(Array.from({ length: (i % 64) + 1 }, () => Math.floor(Math.random() * 256)));
        try {
          scanFrames(bytes, { kind: "safe", seq: i % 3 }, dir);
        } catch (e) {
          expect(e).toBeInstanceOf(WalFailHard);
        }
      }
    });
  });

  describe("append errors", () => {
    it("refuses a non-object entry with WAL_ENTRY_INVALID and keeps working", async () => {
      const wal = await open();
      await expect(wal.append([] as unknown as Record<string, unknown>)).rejects.toMatchObject({ code: "WAL_ENTRY_INVALID" });
      expect(await wal.append({ ok: 1 })).toBe(1);
      await wal.close();
    });
    it("after the WAL file is removed from under it, acknowledged entries stay acknowledged on reopen", async () => {
      const wal = await open();
      await wal.append({ a: 1 });
      await wal.close();
      await appendFile(p.wal, frame(2).subarray(0, 3));
      await truncate(p.wal, frame(1).length + 3);
      const again = await open();
      expect((await again.readFrom(1)).map((e) => e.event)).toEqual([{ a: 1 }]);
      await again.close();
    });
  });
});
