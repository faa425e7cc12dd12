/**
 * Power loss under the relay ledger's LMDB environment, simulated in user
 * space the way dm-log-writes does it in the kernel: a workload child runs
 * under an LD_PRELOAD shim (power-loss/plshim.c) that logs every mutating
 * libc call on the ledger's directory with offsets and bytes; the replayer
 * (power-loss/replay.ts) rebuilds what a power cut at log position k leaves
 * (what fsync/fdatasync/O_DSYNC made durable, plus a seeded choice of what
 * was not: none, all, a torn prefix, random sectors, size without data; and
 * for directory entries strict, ordered or any). A checker child opens each
 * image with lmdb-js, as the ledger does after a reboot. Invariant: the
 * recovered database is exactly the state after j committed transactions,
 * with j ≥ the last acknowledged one (never more than the one in flight) —
 * nothing acknowledged lost, no transaction half applied, nothing twice.
 *
 * Seed printed; replay with EDGE_POWERLOSS_SEED=<seed>. Iterations:
 * EDGE_POWERLOSS_ITERATIONS (default 500; `npm run test:crash` runs 3000).
 * What the simulation cannot model: docs/testing.md, "Power loss under LMDB".
 */
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, expect } from "vitest";
import { seededRng } from "../../src/lib/index.js";
import type { Rng } from "../../src/lib/index.js";
import { REPO_ROOT } from "../helpers/cli.js";
import { needs } from "../helpers/needs.js";
import { findCommand } from "../helpers/peers.js";
import { ledgerSteps, stateAfter } from "./power-loss/ledger-model.js";
import { LEDGER_FILE } from "./power-loss/ledger-options.js";
import { CONTENT_MODES, META_MODES, REC, crashAt, parseLog } from "./power-loss/replay.js";
import { Checker, HERE, runUnderShim, writeImage } from "./power-loss/harness.js";
import { buildShim, shimEnv } from "./power-loss/shim.js";

const ITERATIONS = Number(process.env.EDGE_POWERLOSS_ITERATIONS ?? 500);
const SEED = process.env.EDGE_POWERLOSS_SEED !== undefined ? Number(process.env.EDGE_POWERLOSS_SEED) >>> 0 : (Date.now() ^ (process.pid << 12)) >>> 0;
/** Transactions per workload run; one run serves this many cut iterations. */
const STEPS = 40;
const CUTS_PER_RUN = 250;

console.log(`[edge-powerloss] seed=${SEED} iterations=${ITERATIONS} (replay: EDGE_POWERLOSS_SEED=${SEED})`);

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)] as T;

function lastAck(acks: readonly string[]): { opened: boolean; n: number } {
  let n = 0;
  for (const a of acks) {
    const m = /^ack (\d+)$/.exec(a);
    if (m) n = Math.max(n, Number(m[1]));
  }
  return { opened: acks.includes("open"), n };
}

/** Which prefix of the steps `entries` is, if any. */
function matchingPrefix(steps: ReturnType<typeof ledgerSteps>, entries: Map<string, string>, from: number, to: number): number | undefined {
  for (let j = from; j <= to; j++) {
    const want = stateAfter(steps, j);
    if (want.size === entries.size && [...want].every(([k, v]) => entries.get(k) === v)) return j;
  }
  return undefined;
}

const gcc = needs("gcc");
const gccStrace = needs("gcc", "strace");

gcc.describe("power loss under the relay ledger (LMDB, LD_PRELOAD write log)", () => {
  let root = "";
  let shim = "";
  let keep = false;
  /** Images cut before the first acknowledged commit that LMDB cannot open (filled by the cut test). */
  const creation: string[] = [];
  let cutsRan = false;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "edge-powerloss-"));
    shim = buildShim(root);
  });
  afterAll(async () => {
    if (keep) console.log(`[edge-powerloss] failing images kept under ${root}`);
    else if (root) await rm(root, { recursive: true, force: true });
  });

  gccStrace.it("the shim logs every mutating system call lmdb-js makes on the ledger's directory (strace -f -y)", async () => {
    const dir = join(root, "strace", "relay");
    await mkdir(dir, { recursive: true });
    const log = join(root, "strace", "log");
    const trace = join(root, "strace", "trace");
    const strace = findCommand("strace") ?? "strace";
    const r = spawnSync(strace, ["-ff", "-y", "-qq", "-o", trace, "-e", "trace=openat,open,creat,write,pwrite64,writev,pwritev,pwritev2,ftruncate,fsync,fdatasync,msync,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,truncate,fallocate,sync_file_range,copy_file_range,io_uring_enter", process.execPath, "--import", "tsx", join(HERE, "ledger-workload.ts"), dir, "7", "12"], {
      cwd: REPO_ROOT,
      env: shimEnv(shim, dir, log),
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const records = parseLog(await readFile(log));
    // Successful mutating calls strace saw on a descriptor or path under `dir`.
    const seen = { write: 0, fsync: 0, trunc: 0, create: 0, rename: 0, unlink: 0, mkdir: 0, other: [] as string[] };
    // -ff: one file per thread, so no call is split into "unfinished" and "resumed" halves.
    const traced = await Promise.all((await readdir(dirname(trace))).filter((f) => f.startsWith("trace.")).map((f) => readFile(join(dirname(trace), f), "utf8")));
    for (const line of traced.join("\n").split("\n")) {
      const m = /^(\w+)\((.*)\)\s+=\s+(-?\d+)/.exec(line);
      if (!m || Number(m[3]) < 0 || !m[2]?.includes(dir)) continue;
      const [, call = "", args = ""] = m;
      const onFd = new RegExp(`^\\d+<${dir}`).test(args);
      if (["write", "pwrite64", "writev", "pwritev", "pwritev2"].includes(call) && onFd) seen.write++;
      else if (["fsync", "fdatasync"].includes(call) && onFd) seen.fsync++;
      else if (call === "ftruncate" && onFd) seen.trunc++;
      else if ((call === "openat" || call === "open") && /O_CREAT/.test(args)) seen.create++;
      else if (call === "openat" || call === "open") continue;
      else if (call === "rename" || call === "renameat") seen.rename++;
      else if (call === "unlink" || call === "unlinkat") seen.unlink++;
      else if (call === "mkdir" || call === "mkdirat") seen.mkdir++;
      else seen.other.push(line);
    }
    const count = (t: number): number => records.filter((x) => x.type === t).length;
    expect(seen.other, "mutating calls the shim does not model").toEqual([]);
    expect(count(REC.WRITE)).toBe(seen.write);
    expect(count(REC.FSYNC)).toBe(seen.fsync);
    expect(count(REC.TRUNC)).toBe(seen.trunc);
    expect(count(REC.RENAME)).toBe(seen.rename);
    expect(count(REC.UNLINK)).toBe(seen.unlink);
    expect(count(REC.MKDIR)).toBe(seen.mkdir);
    expect(seen.rename, "the ledger's atomic creation renames once").toBe(1);
    // An O_CREAT open of an existing file creates nothing: the shim logs only real creations.
    expect(count(REC.CREATE)).toBeGreaterThan(0);
    expect(count(REC.CREATE)).toBeLessThanOrEqual(seen.create);
    expect(records.some((x) => x.type === REC.WRITE && x.durable), "lmdb-js commits its meta page through an O_DSYNC descriptor").toBe(true);
  });

  gcc.it(
    `a power cut at any log position keeps every acknowledged ledger transaction, applies none in part or twice (${ITERATIONS} seeded cuts)`,
    async () => {
      const rng = seededRng(SEED);
      const newChecker = (): Checker<{ entries?: [string, string][]; error?: string }> => new Checker("ledger-check.ts");
      let checker = newChecker();
      const violations: string[] = [];
      const stats = { iterations: 0, runs: 0, records: 0, noLedgerYet: 0, openErrorsBeforeAck: 0, inFlightSurvived: 0, pendingWrites: 0, survivedWrites: 0, modes: {} as Record<string, number> };
      try {
        for (let run = 0; stats.iterations < ITERATIONS; run++) {
          const seed = Math.floor(rng() * 2 ** 31);
          const runDir = join(root, `run-${run}`);
          const dir = join(runDir, "relay");
          await mkdir(dir, { recursive: true });
          const log = join(runDir, "log");
          const stdout = runUnderShim(shim, "ledger-workload.ts", dir, log, [String(seed), String(STEPS)]);
          const records = parseLog(await readFile(log));
          stats.runs++;
          stats.records += records.length;
          const steps = ledgerSteps(seed, STEPS);
          // The shim saw every acknowledgement the workload printed, in order.
          expect(crashAt(records, records.length, rng, "durable", "strict").acks).toEqual(stdout);
          const cuts = Math.min(CUTS_PER_RUN, ITERATIONS - stats.iterations);
          for (let c = 0; c < cuts; c++) {
            // One cut in five falls in the first records, while the environment is created (a window of a few calls).
            const k = rng() < 0.2 ? Math.floor(rng() * Math.min(16, records.length + 1)) : Math.floor(rng() * (records.length + 1));
            const content = pick(rng, CONTENT_MODES);
            const meta = pick(rng, META_MODES);
            const image = crashAt(records, k, rng, content, meta);
            const label = `seed=${SEED} run=${run} cut=${k}/${records.length} content=${content} meta=${meta}`;
            stats.modes[content] = (stats.modes[content] ?? 0) + 1;
            stats.pendingWrites += image.pendingWrites;
            stats.survivedWrites += image.survivedWrites;
            const img = join(runDir, `cut-${c}`);
            await writeImage(image, img);
            const { opened, n } = lastAck(image.acks);
            if (!image.files.has(LEDGER_FILE)) {
              // Cut before the environment got its durable name: the next start creates a new one, fine while nothing was acknowledged.
              stats.iterations++;
              stats.noLedgerYet++;
              if (opened || n > 0) violations.push(`${label}: the ledger file is gone although ${opened ? "its creation" : ""}${n > 0 ? ` and ${n} transactions` : ""} was acknowledged`);
              else await rm(img, { recursive: true, force: true });
              continue;
            }
            const got = await checker.check(img);
            stats.iterations++;
            // A checker that LMDB crashed (a corrupt page can SIGSEGV it) is replaced, so every image gets its own verdict.
            if (checker.dead) checker = newChecker();
            if (got.error !== undefined && n === 0) {
              // Cut before the first acknowledged commit: nothing acknowledged is lost, but the ledger must still open.
              stats.openErrorsBeforeAck++;
              creation.push(`${label}: the ledger does not open after a cut while it was being created (${opened ? "open acknowledged, " : ""}no commit yet): ${got.error}`);
              continue;
            }
            if (got.error !== undefined) {
              violations.push(`${label}: the ledger does not open after the cut (${n} acknowledged${opened ? "" : ", before the open was acknowledged"}): ${got.error}`);
              continue;
            }
            const entries = new Map(got.entries ?? []);
            const j = matchingPrefix(steps, entries, n, Math.min(n + 1, STEPS));
            if (j === undefined) {
              const lost = [...stateAfter(steps, n)].filter(([key, v]) => entries.get(key) !== v).map(([key]) => key);
              violations.push(`${label}: recovered ${entries.size} keys, not the state after ${n} (acknowledged) or ${n + 1} transactions; differing from state ${n}: ${lost.slice(0, 5).join(", ")}`);
              continue;
            }
            if (j > n) stats.inFlightSurvived++;
            await rm(img, { recursive: true, force: true });
          }
          if (violations.length === 0) await rm(runDir, { recursive: true, force: true });
        }
      } finally {
        checker.close();
      }
      console.log(`[edge-powerloss] ${JSON.stringify(stats)}`);
      cutsRan = true;
      if (violations.length > 0) keep = true;
      expect(violations.slice(0, 10), `${violations.length} violation(s); seed=${SEED}`).toEqual([]);
      expect(stats.iterations).toBeGreaterThanOrEqual(ITERATIONS);
      // The cuts really exercised pending state: some unsynced writes survived (in part) and some in-flight commit did.
      expect(stats.survivedWrites).toBeGreaterThan(0);
    },
    600_000,
  );

  /*
   * LMDB writes a new environment's two meta pages with a plain pwrite and syncs
   * them only with the first commit; a cut before that leaves a file of zeros or
   * torn meta pages, which lmdb-js does not refuse but crashes on (SIGSEGV) —
   * a node that could never start edged again. The ledger must create its
   * environment so that a cut at any moment leaves either no ledger or a valid one.
   */
  gcc.it("a power cut while the ledger environment is being created leaves a ledger that opens (no SIGSEGV on a torn first meta page)", () => {
    expect(cutsRan, "runs after the cut test in the same file").toBe(true);
    if (creation.length > 0) keep = true;
    expect(creation.slice(0, 5), `${creation.length} image(s); seed=${SEED}`).toEqual([]);
  });
});
