/**
 * Power loss under the real relay ledger (src/edge/relay/ledger.ts) and its
 * receiver inbox, with the LD_PRELOAD write log of test/edge/power-loss (see
 * power-loss-ledger.test.ts and docs/testing.md for the model). The workload
 * (power-loss/ledger-real-workload.ts) schedules segments to two peers, begins
 * and acks deliveries, receives segments into the inbox (some twice: a push
 * retried after a lost ack), and advances the application cursor, each
 * acknowledged after it resolved. After a cut at any log position the ledger,
 * reopened as edged would (recovery included), must keep every acknowledged
 * operation, never hold a segment twice in the inbox, and never move the
 * cursor back (ledger-real-invariants.ts).
 *
 * Seed printed; replay with EDGE_POWERLOSS_SEED=<seed>. Iterations:
 * EDGE_POWERLOSS_ITERATIONS (default 500).
 */
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect } from "vitest";
import { seededRng } from "../../src/lib/index.js";
import type { Rng } from "../../src/lib/index.js";
import { needs } from "../helpers/needs.js";
import { Checker, runUnderShim, writeImage } from "./power-loss/harness.js";
import { ledgerViolations } from "./power-loss/ledger-real-invariants.js";
import type { RecoveredLedger } from "./power-loss/ledger-real-invariants.js";
import { CONTENT_MODES, META_MODES, crashAt, parseLog } from "./power-loss/replay.js";
import { buildShim } from "./power-loss/shim.js";

const ITERATIONS = Number(process.env.EDGE_POWERLOSS_ITERATIONS ?? 500);
const SEED = process.env.EDGE_POWERLOSS_SEED !== undefined ? Number(process.env.EDGE_POWERLOSS_SEED) >>> 0 : (Date.now() ^ (process.pid << 10)) >>> 0;
const OPS = 60;
const CUTS_PER_RUN = 250;

console.log(`[edge-powerloss-relay-ledger] seed=${SEED} iterations=${ITERATIONS} (replay: EDGE_POWERLOSS_SEED=${SEED})`);

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)] as T;
const gcc = needs("gcc");

gcc.describe("power loss under the real relay ledger and its inbox (LMDB, LD_PRELOAD write log)", () => {
  let root = "";
  let shim = "";
  let keep = false;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "edge-powerloss-relay-"));
    shim = buildShim(root);
  });
  afterAll(async () => {
    if (keep) console.log(`[edge-powerloss-relay-ledger] failing images kept under ${root}`);
    else if (root) await rm(root, { recursive: true, force: true });
  });

  gcc.it(
    `a power cut at any moment keeps every acknowledged schedule, ack, receipt and cursor move; no segment twice in the inbox (${ITERATIONS} seeded cuts)`,
    async () => {
      const rng = seededRng(SEED);
      const newChecker = (): Checker<Partial<RecoveredLedger> & { error?: string }> => new Checker("ledger-real-check.ts");
      let checker = newChecker();
      const violations: string[] = [];
      const creation: string[] = [];
      const stats = { iterations: 0, runs: 0, records: 0, acks: 0, inboxDuplicatesAcked: 0 };
      try {
        for (let run = 0; stats.iterations < ITERATIONS; run++) {
          const seed = Math.floor(rng() * 2 ** 31);
          const runDir = join(root, `run-${run}`);
          const dir = join(runDir, "relay");
          await mkdir(dir, { recursive: true });
          const log = join(runDir, "log");
          const stdout = runUnderShim(shim, "ledger-real-workload.ts", dir, log, [String(seed), String(OPS)]);
          const records = parseLog(await readFile(log));
          stats.runs++;
          stats.records += records.length;
          stats.inboxDuplicatesAcked += stdout.filter((l) => l.endsWith(" dup")).length;
          expect(crashAt(records, records.length, rng, "durable", "strict").acks).toEqual(stdout);
          const cuts = Math.min(CUTS_PER_RUN, ITERATIONS - stats.iterations);
          for (let c = 0; c < cuts; c++) {
            // One cut in five falls in the first records, while the environment is created (a window of a few calls).
            const k = rng() < 0.2 ? Math.floor(rng() * Math.min(16, records.length + 1)) : Math.floor(rng() * (records.length + 1));
            const content = pick(rng, CONTENT_MODES);
            const meta = pick(rng, META_MODES);
            const image = crashAt(records, k, rng, content, meta);
            const label = `seed=${SEED} run=${run} cut=${k}/${records.length} content=${content} meta=${meta}`;
            const img = join(runDir, `cut-${c}`);
            await writeImage(image, img);
            const got = await checker.check(img);
            stats.iterations++;
            stats.acks += image.acks.length;
            if (checker.dead) checker = newChecker();
            const committed = image.acks.some((a) => a !== "open");
            if (got.error !== undefined) {
              (committed ? violations : creation).push(`${label}: the ledger does not open (${image.acks.length} acknowledgements): ${got.error}`);
              continue;
            }
            const v = ledgerViolations(image.acks, { segments: got.segments ?? [], deliveries: got.deliveries ?? [], inbox: got.inbox ?? [], cursor: got.cursor ?? 0 });
            if (v.length > 0) {
              violations.push(`${label}: ${v.slice(0, 3).join("; ")}`);
              continue;
            }
            await rm(img, { recursive: true, force: true });
          }
          if (violations.length === 0) await rm(runDir, { recursive: true, force: true });
        }
      } finally {
        checker.close();
      }
      console.log(`[edge-powerloss-relay-ledger] ${JSON.stringify({ ...stats, creationWindowUnopenable: creation.length })}`);
      if (violations.length > 0 || creation.length > 0) keep = true;
      expect(violations.slice(0, 10), `${violations.length} violation(s); seed=${SEED}`).toEqual([]);
      // See power-loss-ledger.test.ts: a cut before the ledger's first commit must leave a ledger that opens.
      expect(creation.slice(0, 5), `${creation.length} image(s) cut while the ledger was created do not open; seed=${SEED}`).toEqual([]);
      expect(stats.iterations).toBeGreaterThanOrEqual(ITERATIONS);
      expect(stats.inboxDuplicatesAcked, "the workload retried receipts, so duplicates were possible").toBeGreaterThan(0);
    },
    900_000,
  );
});
