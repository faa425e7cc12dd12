/**
 * Real SIGKILL against the telemetry WAL on the real file system. A child
 * (test/fixtures/wal-writer.ts) appends as fast as it can with several
 * concurrent appenders and prints `ack <seq> <sha256>` only after each append
 * resolved; the parent SIGKILLs it at a random (seeded) moment — sometimes
 * while it is still recovering — reopens the WAL in-process and checks: every
 * acknowledged seq is there with the same content, seqs are contiguous from 1,
 * the on-disk safe_seq equals lastSeq, nothing past it is readable (no phantom
 * bytes left either), and appends continue at lastSeq+1. Five kills share one
 * directory, so recovery also runs over logs that earlier kills left.
 *
 * Every other chain runs with 2 KiB segments, and between kills the parent
 * moves telemetry.pos forward as an exporter would: the writer reclaims behind
 * it, so kills also land inside seals and reclamations. There, seqs ≤ base are
 * gone by design (never beyond the position written), the rest as above.
 *
 * Seed printed; replay the kill schedule with WAL_SIGKILL_SEED=<seed>.
 * Iterations: WAL_SIGKILL_ITERATIONS (default 100; `npm run test:crash` runs 1000).
 * The tsx start of a child (~0.4 s) is hidden by starting the next children
 * while the current one runs (`--wait`: they load, then open only when told).
 *
 * Deterministic crash windows (the child kills itself inside the WAL's
 * ordering hooks) and a lock-file crash artifact are checked at the end.
 */
import { spawn } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Wal, decodeSafeSeq, nodeWalFs, readGeneration, walPaths } from "../../src/telemetry/index.js";
import { writePos } from "../../src/telemetry/exporter/pos.js";
import type { WalLogger } from "../../src/telemetry/index.js";
import { seededRng } from "../../src/lib/index.js";
import type { Rng } from "../../src/lib/index.js";
import { REPO_ROOT } from "../helpers/cli.js";

const ITERATIONS = Number(process.env.WAL_SIGKILL_ITERATIONS ?? 100);
const SEED = process.env.WAL_SIGKILL_SEED !== undefined ? Number(process.env.WAL_SIGKILL_SEED) >>> 0 : (Date.now() ^ (process.pid << 12)) >>> 0;
const APPENDERS = 4;
/** Kills per directory before a fresh one. */
const CHAIN = 5;
/** Children loading ahead of the one being killed. */
const PREWARM = 2;
const WRITER = join(REPO_ROOT, "test/fixtures/wal-writer.ts");

console.log(`[wal-sigkill] seed=${SEED} iterations=${ITERATIONS} (replay: WAL_SIGKILL_SEED=${SEED})`);

const int = (rng: Rng, n: number): number => Math.floor(rng() * n);
const sha256 = (s: string): string => createHash("sha256").update(s).digest("hex");
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function quietLog(): WalLogger & { errors: string[] } {
  const errors: string[] = [];
  return { errors, warn: () => undefined, error: (obj, msg) => void errors.push(`${msg} ${JSON.stringify(obj)}`) };
}

/** A writer child and everything it printed, line by line (a torn last line is never counted). */
class Writer {
  readonly child: ChildProcessWithoutNullStreams;
  readonly lines: string[] = [];
  stderr = "";
  #partial = "";
  #waiters: { match: (l: string) => boolean; resolve: (l: string | undefined) => void }[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly spawnedAt = Date.now();
  loadedAt = 0;

  constructor(dir: string, extra: string[] = []) {
    this.child = spawn(process.execPath, ["--import", "tsx", WRITER, dir, "--appenders", String(APPENDERS), ...extra], { cwd: REPO_ROOT, stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdout.setEncoding("utf8");
    this.child.stdout.on("data", (chunk: string) => {
      const parts = (this.#partial + chunk).split("\n");
      this.#partial = parts.pop() ?? "";
      for (const l of parts) {
        this.lines.push(l);
        if (l === "loaded") this.loadedAt = Date.now();
        this.#waiters = this.#waiters.filter((w) => (w.match(l) ? (w.resolve(l), false) : true));
      }
    });
    this.child.stderr.setEncoding("utf8");
    this.child.stderr.on("data", (chunk: string) => {
      if (this.stderr.length < 20_000) this.stderr += chunk;
    });
    this.child.stdin.on("error", () => undefined); // EPIPE after a kill
    // "close", not "exit": stdout is fully drained by then, so no ack printed before the kill is missed.
    this.exited = new Promise((resolve) => this.child.once("close", (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal })));
    void this.exited.then(() => {
      for (const w of this.#waiters) w.resolve(undefined);
      this.#waiters = [];
    });
  }

  /** The first line matching, past or future; undefined if the child exits first. */
  waitFor(match: (l: string) => boolean): Promise<string | undefined> {
    const seen = this.lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  acks(): Map<number, string> {
    const m = new Map<number, string>();
    for (const l of this.lines) {
      const [kind, seq, sha] = l.split(" ");
      if (kind === "ack" && seq !== undefined && sha !== undefined) m.set(Number(seq), sha);
    }
    return m;
  }
}

interface Stats {
  iterations: number;
  acknowledged: number;
  committedUnacked: number;
  parentAppends: number;
  killedBeforeOpen: number;
  maxLog: number;
  childLoadMs: number[];
  maxBase: number;
}

describe("SIGKILL the WAL writer at a random moment (real processes, real file system)", () => {
  let root = "";
  /** Failed directories are kept for analysis. */
  let keepRoot = false;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "wal-sigkill-"));
  });
  afterAll(async () => {
    if (keepRoot) console.log(`[wal-sigkill] failed WAL directories kept under ${root}`);
    else if (root) await rm(root, { recursive: true, force: true });
  });

  it(
    "every acknowledged entry survives with its content; no phantom; safe_seq = lastSeq; appends continue",
    async () => {
      const started = Date.now();
      const violations: string[] = [];
      const stats: Stats = { iterations: 0, acknowledged: 0, committedUnacked: 0, parentAppends: 0, killedBeforeOpen: 0, maxLog: 0, childLoadMs: [], maxBase: 0 };
      const dirOf = (i: number): string => join(root, `chain-${Math.floor(i / CHAIN)}`);
      const segmented = (i: number): boolean => Math.floor(i / CHAIN) % 2 === 1;
      const pool = new Map<number, Writer>();
      const writerFor = (i: number): Writer => {
        let w = pool.get(i);
        if (!w) pool.set(i, (w = new Writer(dirOf(i), ["--wait", ...(segmented(i) ? ["--segment-bytes", "2048"] : [])])));
        return w;
      };
      /** Everything a reader has been shown in the current chain (above the reclaimed base): seq → sha256 of the event JSON. */
      let known = new Map<number, string>();
      /** The chain's last committed seq, and the exporter position written to telemetry.pos. */
      let knownLast = 0;
      let confirmed = 0;
      try {
        for (let i = 0; i < ITERATIONS; i++) {
          const rng: Rng = seededRng((SEED + Math.imul(i + 1, 0x9e3779b1)) >>> 0);
          if (i % CHAIN === 0) {
            known = new Map();
            knownLast = 0;
            confirmed = 0;
          }
          const dir = dirOf(i);
          const w = writerFor(i);
          for (let k = 1; k <= PREWARM && i + k < ITERATIONS; k++) writerFor(i + k);
          const fail = (msg: string): void => void violations.push(`iteration ${i} (${dir}): ${msg} [replay: WAL_SIGKILL_SEED=${SEED}]`);

          if ((await w.waitFor((l) => l === "loaded")) === undefined) {
            fail(`writer died while loading: ${w.stderr.slice(0, 500)}`);
            break;
          }
          stats.childLoadMs.push(w.loadedAt - w.spawnedAt);
          // The kill moment: mostly while appending, sometimes during recovery, sometimes after k acks.
          const r = rng();
          w.child.stdin.write("go\n");
          if (r < 0.1) await sleep(int(rng, 4)); // likely inside lock + recovery
          else if (r < 0.8) {
            await w.waitFor((l) => l.startsWith("open "));
            await sleep(int(rng, 40));
          } else {
            const k = 1 + int(rng, 300);
            await w.waitFor((l) => l.startsWith("ack ") && Number(l.split(" ")[1]) >= k);
          }
          w.child.kill("SIGKILL");
          const exit = await w.exited;
          pool.delete(i);
          if (exit.signal !== "SIGKILL") fail(`writer ended on its own (code ${exit.code}): ${w.lines.filter((l) => l.startsWith("error")).join("; ")} ${w.stderr.slice(0, 500)}`);
          for (const l of w.lines) if (l.startsWith("error")) fail(`writer reported ${l}`);
          const openLine = w.lines.find((l) => l.startsWith("open "));
          if (!openLine) stats.killedBeforeOpen++;
          else {
            const recoveredLast = Number(openLine.split(" ")[1]);
            if (recoveredLast !== knownLast) fail(`the writer recovered lastSeq ${recoveredLast}, but ${knownLast} entries were committed before it started`);
          }
          const acks = w.acks();
          stats.acknowledged += acks.size;

          // Reopen in-process (the lock of the dead writer is broken: its pid is gone).
          const log = quietLog();
          let wal: Wal;
          try {
            wal = await Wal.open(dir, { log });
          } catch (e) {
            fail(`reopen after SIGKILL failed: ${e instanceof Error ? `${(e as { code?: string }).code} ${e.message}` : String(e)}`);
            // Keep the evidence, start this chain over in a fresh directory (the next writer's path).
            await rename(dir, `${dir}.failed-${i}`);
            keepRoot = true;
            known = new Map();
            knownLast = 0;
            confirmed = 0;
            continue;
          }
          const last = wal.lastSeq;
          const base = wal.base;
          if (base > confirmed) fail(`base ${base} is beyond the confirmed position ${confirmed}: unexported entries were reclaimed`);
          stats.maxBase = Math.max(stats.maxBase, base);
          const entries = await wal.readFrom(0);
          if (entries.length !== last - base) fail(`readFrom(0) returned ${entries.length} entries, lastSeq is ${last}, base ${base}`);
          const shaOf = new Map<number, string>();
          entries.forEach((e, idx) => {
            if (e.seq !== base + idx + 1) fail(`entry ${idx} has seq ${e.seq} (base ${base})`);
            shaOf.set(e.seq, sha256(JSON.stringify(e.event)));
          });
          let lost = 0;
          for (const [seq, sha] of [...known, ...acks]) {
            if (seq <= base) continue; // confirmed, then reclaimed
            const got = shaOf.get(seq);
            if (got === undefined) lost++;
            else if (got !== sha) fail(`seq ${seq}: content differs from what was acknowledged`);
          }
          if (lost > 0) fail(`${lost} acknowledged/committed entries lost (lastSeq ${last}, max ack ${Math.max(0, ...acks.keys())})`);
          const maxAck = Math.max(knownLast, ...acks.keys());
          for (const e of entries) {
            if (e.seq <= maxAck || known.has(e.seq)) continue;
            // Committed but never acknowledged (killed between the safe point and the print): it must be one of the writer's own events.
            if (typeof e.event.w !== "number" || e.event.pid !== w.child.pid) fail(`seq ${e.seq} is not an event this writer appended: ${JSON.stringify(e.event).slice(0, 100)}`);
            stats.committedUnacked++;
          }
          if ((await wal.readFrom(last + 1)).length > 0) fail(`entries beyond lastSeq ${last} are readable`);
          const walBytes = (await nodeWalFs.readFile(join(dir, "telemetry.wal"))) ?? new Uint8Array(0);
          const safeBytes = await nodeWalFs.readFile(join(dir, "telemetry.safe_seq"));
          const safe = safeBytes === undefined ? undefined : decodeSafeSeq(safeBytes);
          if (safe !== last && !(safe === undefined && last === 0)) fail(`on-disk safe_seq=${safe}, lastSeq ${last}`);
          const activeFirst = (wal.sealedSegments[wal.sealedSegments.length - 1]?.last ?? base) + 1;
          const frameBytes = entries.filter((e) => e.seq >= activeFirst).reduce((n, e) => n + 4 + Buffer.byteLength(JSON.stringify({ seq: e.seq, event: e.event })), 0);
          if (walBytes.byteLength !== frameBytes) fail(`telemetry.wal is ${walBytes.byteLength} bytes; frames ${activeFirst}..${last} are ${frameBytes} (phantom or torn bytes left)`);
          for (const e of log.errors) fail(`recovery logged ${e}`);

          // Appends continue at lastSeq+1; what a reader saw is now committed.
          known = shaOf;
          for (let k = 1, n = 1 + int(rng, 2); k <= n; k++) {
            const event = { parent: true, i, k };
            const seq = await wal.append(event);
            if (seq !== last + k) fail(`append after reopen got seq ${seq}, want ${last + k}`);
            known.set(seq, sha256(JSON.stringify(event)));
            stats.parentAppends++;
          }
          knownLast = wal.lastSeq;
          await wal.close();
          // An exporter confirms part of what is committed; the next writer reclaims behind it.
          if (segmented(i)) {
            confirmed += int(rng, knownLast - confirmed + 1);
            await writePos(dir, { seq: confirmed, generation: (await readGeneration(nodeWalFs, dir)).id });
          }
          stats.iterations++;
          stats.maxLog = Math.max(stats.maxLog, known.size);
          if (violations.length > 20) break;
        }
      } finally {
        for (const w of pool.values()) w.child.kill("SIGKILL");
        await Promise.all([...pool.values()].map((w) => w.exited));
      }
      const load = stats.childLoadMs.sort((a, b) => a - b);
      console.log(
        `[wal-sigkill] seed=${SEED} iterations=${stats.iterations} acknowledged=${stats.acknowledged} lost=${violations.some((v) => v.includes("lost")) ? "SEE VIOLATIONS" : 0} ` +
          `phantoms=${violations.some((v) => v.includes("beyond") || v.includes("phantom")) ? "SEE VIOLATIONS" : 0} committed_unacked=${stats.committedUnacked} ` +
          `killed_during_recovery=${stats.killedBeforeOpen} parent_appends=${stats.parentAppends} longest_log=${stats.maxLog} max_base=${stats.maxBase} ` +
          `child_load_ms_median=${load[Math.floor(load.length / 2)] ?? 0} violations=${violations.length} ms=${Date.now() - started}`,
      );
      expect(violations.slice(0, 10)).toEqual([]);
    },
    60_000 + ITERATIONS * 2_500,
  );
});

/** Runs a writer that kills itself at a hook; resolves once it is dead. */
async function killAtHook(dir: string, hook: string, appenders = 1): Promise<Writer> {
  const w = new Writer(dir, ["--kill-at", hook, "--appenders", String(appenders)]);
  const exit = await w.exited;
  if (exit.signal !== "SIGKILL") throw new Error(`the writer did not die at ${hook}: code ${exit.code} ${w.lines.join(" | ")} ${w.stderr.slice(0, 400)}`);
  return w;
}

describe("SIGKILL inside each window of the commit sequence (deterministic)", () => {
  let root = "";
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "wal-sigkill-det-"));
  });
  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it("after the WAL fsync of seq 5, before its safe point (S3 window): the frame is a phantom and is discarded", async () => {
    const dir = join(root, "s3");
    const w = await killAtHook(dir, "walSynced:5");
    expect([...w.acks().keys()]).toEqual([1, 2, 3, 4]);
    const wal = await Wal.open(dir, { log: quietLog() });
    expect(wal.lastSeq).toBe(4);
    expect(wal.recovered.scan.phantoms).toBe(1);
    expect((await wal.readFrom(0)).map((e) => sha256(JSON.stringify(e.event)))).toEqual([...w.acks().values()]);
    expect(await wal.append({ next: true })).toBe(5);
    await wal.close();
  }, 30_000);

  it("after the safe point of seq 5 is durable, before the ack: the entry is committed though never acknowledged", async () => {
    const dir = join(root, "after-safe");
    const w = await killAtHook(dir, "safeSeqAdvanced:5");
    expect([...w.acks().keys()]).toEqual([1, 2, 3, 4]);
    const wal = await Wal.open(dir, { log: quietLog() });
    expect(wal.lastSeq).toBe(5);
    expect(decodeSafeSeq((await nodeWalFs.readFile(join(dir, "telemetry.safe_seq"))) ?? new Uint8Array())).toBe(5);
    await wal.close();
  }, 30_000);

  it("after the WAL fsync of the very first append (first run, no safe_seq yet): reopening is not a fail-hard", async () => {
    const dir = join(root, "first");
    await killAtHook(dir, "walSynced:1");
    const log = quietLog();
    // Today: WalFailHard SAFESEQ_MISSING — a SIGKILL at the wrong moment leaves a node that needs an operator.
    const wal = await Wal.open(dir, { log });
    expect(wal.lastSeq).toBe(0);
    expect(log.errors).toEqual([]);
    expect(await wal.append({ first: true })).toBe(1);
    await wal.close();
  }, 30_000);

  it("an empty WAL lock file (<dir>.lock; SIGKILL between O_EXCL create and the pid write, or power loss before it reached the disk) does not wedge the WAL", async () => {
    const dir = join(root, "empty-lock");
    const seed = await Wal.open(dir, { log: quietLog() });
    await seed.append({ before: "crash" });
    await seed.close();
    await writeFile(walPaths(dir).lock, "");
    // Today: waits 5 s, then WAL_LOCKED "open in process unknown" — forever, on every restart.
    const wal = await Wal.open(dir, { log: quietLog() });
    expect(wal.lastSeq).toBe(1);
    await wal.close();
  }, 30_000);
});
