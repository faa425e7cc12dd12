import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { DEFAULT_SEGMENT_BYTES, Wal, WalFileReader, appendJsonLines, confirmedPos, requireWalDir, decodePosition, inspectWalDir, walPaths, nodeWalFs, readBase, readGeneration } from "../../telemetry/index.js";
import type { WalInspection } from "../../telemetry/index.js";
import { ExitCodes, writeFileAtomic } from "../../lib/index.js";
import { goArch, walVerifyReport } from "../../evidence/index.js";
import { action, outcome } from "../run.js";
import { emit } from "../output.js";

function parseSeq(v: string): number {
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n)) throw new InvalidArgumentError("must be a non-negative integer");
  return n;
}

interface PosView {
  seq: number;
  generation: string;
  /** Whether it belongs to the WAL's current generation (else exporter and reclamation ignore it). */
  current: boolean;
}

function inspectText(dir: string, i: WalInspection, pos: PosView | null, generation: string): string {
  const lines = [
    `WAL ${dir}`,
    `  frames: ${i.frames.length} (${i.wal_bytes} bytes${i.torn_tail_bytes > 0 ? `, torn tail ${i.torn_tail_bytes} bytes` : ""})`,
    `  safe_seq: ${i.safe_seq_status === "ok" ? String(i.safe_seq) : i.safe_seq_status}; max seq on disk: ${i.max_seq}`,
    `  segments: ${i.segments.length} sealed + active${i.base > 0 ? `; seqs 1..${i.base} reclaimed (base ${i.base})` : ""}`,
    `  generation: ${generation}`,
    `  telemetry.pos (exporter): ${pos === null ? "none" : `${pos.seq}${pos.current ? "" : ` (generation ${pos.generation}: another WAL generation, ignored)`}`}`,
    ...Object.entries(i.invariants).map(([k, v]) => `  ${v.pass ? "✓" : "✗"} ${k}: ${v.msg}`),
  ];
  if (i.fail_hard) lines.push(`  recovery would FAIL HARD: ${i.fail_hard}`);
  return lines.join("\n");
}

async function inspectDir(dir: string): Promise<{ inspection: WalInspection; pos: PosView | null; generation: string }> {
  await requireWalDir(dir);
  const p = walPaths(dir);
  const inspection = await inspectWalDir(dir);
  const { id: generation } = await readGeneration(nodeWalFs, dir);
  const posBytes = await nodeWalFs.readFile(p.pos);
  const decoded = posBytes ? decodePosition(posBytes) : undefined;
  const pos = decoded ? { ...decoded, current: decoded.generation === generation } : null;
  return { inspection, pos, generation };
}

export function registerWal(program: Command): void {
  const wal = program.command("wal").description("the telemetry write-ahead log: append, read, inspect, verify (seed 001)");

  wal.command("append")
    .description("append one JSON object per stdin line; prints `ack <seq>` only once that entry is durable")
    .requiredOption("--dir <dir>", "WAL directory")
    .option("--segment-bytes <n>", "seal the active segment at this size, so confirmed frames can be reclaimed; 0 = seed-exact mode (never seal, only files seed 001 names in the directory)", parseSeq, DEFAULT_SEGMENT_BYTES)
    .action(action(async (flags: { dir: string; segmentBytes: number }) =>
      appendJsonLines(flags.dir, process.stdin, (seq) => void process.stdout.write(`ack ${seq}\n`), { segmentBytes: flags.segmentBytes })));

  wal.command("read")
    .description("print committed entries as JSON lines, streamed (read-only: no recovery, nothing truncated; exit 5 if committed data is damaged)")
    .requiredOption("--dir <dir>", "WAL directory")
    .option("--from <seq>", "first seq to print", parseSeq, 1)
    .action(action(async (flags: { dir: string; from: number }) => {
      await requireWalDir(flags.dir);
      const reader = new WalFileReader(flags.dir);
      const committed = await reader.committed();
      const { base } = await readBase(nodeWalFs, flags.dir);
      if (base > 0 && flags.from <= base) process.stderr.write(`note: seqs 1..${base} were reclaimed after the exporter confirmed them; entries start at ${base + 1}\n`);
      for await (const page of reader.scan(flags.from, committed)) {
        const lines = page.map((e) => `${JSON.stringify({ seq: e.seq, event: e.event })}\n`).join("");
        if (!process.stdout.write(lines)) await new Promise<void>((resolve) => process.stdout.once("drain", () => resolve()));
      }
    }));

  wal.command("inspect")
    .description("show frames, the safe point, the exporter position and every invariant (read-only)")
    .requiredOption("--dir <dir>", "WAL directory")
    .option("--frames", "list every frame")
    .option("--json", "machine-readable output")
    .action(action(async (flags: { dir: string; frames?: boolean; json?: boolean }) => {
      const { inspection, pos, generation } = await inspectDir(flags.dir);
      const shown = flags.frames ? inspection : { ...inspection, frames: inspection.frames.length };
      emit({ ok: inspection.fail_hard === null, dir: flags.dir, pos: pos?.seq ?? null, pos_generation: pos?.generation ?? null, pos_current: pos?.current ?? null, generation, ...shown }, flags, () =>
        `${inspectText(flags.dir, inspection, pos, generation)}${flags.frames ? `\n${inspection.frames.map((f) => `  #${f.seq ?? "?"} ${f.segment ?? "telemetry.wal"}@${f.offset} ${f.length}B${f.valid_json ? "" : " INVALID"}`).join("\n")}` : ""}`);
      return outcome(inspection.fail_hard === null, ExitCodes.walFailHard);
    }));

  wal.command("reclaim")
    .description("delete sealed segments the exporter has confirmed (telemetry.pos); opens the WAL, so not while a runtime holds it")
    .requiredOption("--dir <dir>", "WAL directory")
    .option("--upto <seq>", "reclaim no further than this seq (never beyond telemetry.pos)", parseSeq)
    .option("--json", "machine-readable output")
    .action(action(async (flags: { dir: string; upto?: number; json?: boolean }) => {
      await requireWalDir(flags.dir);
      const pos = await confirmedPos(flags.dir);
      const limit = Math.min(pos, flags.upto ?? Number.POSITIVE_INFINITY);
      const w = await Wal.open(flags.dir);
      try {
        const r = await w.reclaim(limit);
        emit({ dir: flags.dir, pos, limit, ...r, retained_segments: w.sealedSegments.length }, flags, () =>
          r.segments > 0 ? `reclaimed ${r.segments} segment(s), ${r.bytes} bytes; entries now start at seq ${r.base + 1}` : `nothing to reclaim: no sealed segment lies wholly at or below seq ${limit} (telemetry.pos ${pos})`);
      } finally {
        await w.close();
      }
    }));

  wal.command("verify")
    .description("write seed 002's wal_verify.json report for a WAL directory; exit 5 on a fail-hard cause")
    .requiredOption("--dir <dir>", "WAL directory")
    .requiredOption("--out <file>", "where to write wal_verify.json")
    .option("--arch <arch>", "architecture recorded in the report (seed 002 names: amd64, arm64, riscv64)", goArch())
    .option("--fs <fs>", "file system type recorded in the report", "unknown")
    .option("--run <n>", "run number recorded in the report", parseSeq, 1)
    .option("--json", "print the report on stdout too")
    .action(action(async (flags: { dir: string; out: string; arch: string; fs: string; run: number; json?: boolean }) => {
      const { inspection } = await inspectDir(flags.dir);
      const report = walVerifyReport(inspection, flags);
      await writeFileAtomic(flags.out, `${JSON.stringify(report, null, 2)}\n`);
      emit(report, flags, (r) => `${r.pass ? "PASS" : "FAIL"} ${flags.dir} -> ${flags.out}${inspection.fail_hard ? `\ncause: ${inspection.fail_hard}` : ""}\n${r.violations.map((v) => `  ${v.code}: ${v.msg}`).join("\n")}`);
      return { exitCode: inspection.fail_hard ? ExitCodes.walFailHard : report.pass ? ExitCodes.ok : ExitCodes.failure };
    }));
}
