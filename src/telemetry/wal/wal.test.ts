/**
 * Seed 001, clause by clause. Each test is named after the clause or stop
 * condition it proves (S1–S12, R1–R5, WS-1..WS-4) so the seed's matrix maps
 * onto this file. Real files in temp dirs; the power-loss harness lives in
 * test/wal-crash-harness.test.ts.
 */
import { describe, expect, it, beforeEach } from "vitest";
import { mkdtemp, readFile, writeFile, appendFile, stat, mkdir, truncate } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Wal, WalFailHard, encodeFrame, encodeSafeSeq, decodeSafeSeq, walPaths, scanFrames } from "./index.js";
import type { WalLogger } from "./index.js";

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
    it("a first run discards a telemetry.pos left from an earlier WAL (reclamation must not follow it), with a warning", async () => {
      await writeFile(p.pos, encodeSafeSeq(7));
      const wal = await open();
      expect(existsSync(p.pos)).toBe(false);
      expect(log.records.map((r) => r.msg)).toEqual([expect.stringMatching(/^WAL_POS_DISCARDED/)]);
      await wal.close();
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
    it("records exactly [sync, safe] per commit", async () => {
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

  describe("S9 / §3.5 temp-then-rename", () => {
    it("WS-3: removes a stale safe_seq.tmp when the canonical safe_seq exists", async () => {
      await writeWal([frame(1)], 1);
      await writeFile(p.safeSeqTmp, encodeSafeSeq(9));
      const wal = await open();
      await wal.close();
      expect(existsSync(p.safeSeqTmp)).toBe(false);
      expect(decodeSafeSeq(await readFile(p.safeSeq))).toBe(1);
    });
    it("WS-3: never takes a stale temp for the safe point when the canonical file is missing (first run writes genesis 0)", async () => {
      await writeFile(p.safeSeqTmp, encodeSafeSeq(9));
      const wal = await open();
      expect(wal.lastSeq).toBe(0);
      await wal.close();
      expect(decodeSafeSeq(await readFile(p.safeSeq))).toBe(0);
      expect(existsSync(p.safeSeqTmp)).toBe(false);
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
