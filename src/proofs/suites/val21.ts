/**
 * VAL21 (RL-QMGM-01): queue management. A real edged drains 200 × 64 B
 * segments to a peer under a storage ceiling far smaller than what it sends
 * (40 segments' worth), so the store must evict delivered segments (LRU) to
 * take new ones; a segment that does not fit yet is refused with
 * STORAGE_CEILING_EXCEEDED and enqueued again once the relay caught up (the
 * refusals are counted, nothing is lost, edged never falls over).
 *
 * Checked: every segment delivered; the evictions reconcile exactly with the
 * store (sent − still stored = evicted, all of them LRU of delivered
 * segments, bytes = count × 64, the files on disk = the status's count);
 * relay status accurate: the sender's live counts = what its ledger says
 * after a restart = the receiver's inbox; queue states add up at every
 * sample of the drain.
 *
 * `--devices N` sends N segments instead of 200.
 */
import type { Check, EdgeSuite, EdgeSuiteContext } from "../suite.js";
import { atLeast, equals, thresholdOf } from "../suite.js";
import type { Queue } from "../edge/ctl.js";
import { LabCtlError } from "../edge/ctl.js";
import { inboxProblems, monotonicityViolations, peerQueue, probeNetem, seededSegments, waitFor } from "../edge/common.js";
import { EdgeLab } from "../edge/lab.js";
import { STORE_BLOCK_BYTES } from "../../edge/index.js";

const DEFAULT_SEGMENTS = 200;
const SEGMENT_BYTES = 64;
const CEILING_SEGMENTS = 40;
/** The ceiling counts disk cost, one 4 KiB block per 64 B segment (docs/segment-store.md), so it holds CEILING_SEGMENTS of them. */
const CEILING_BYTES = CEILING_SEGMENTS * STORE_BLOCK_BYTES;
const WAIT_MS = 120_000;
const SRC = "v21-src";
const DST = "v21-dst";

export const val21: EdgeSuite = {
  kind: "edge",
  id: "val21",
  claim: "RL-QMGM-01",
  title: "queue drain of 200 × 64 B segments under a small storage ceiling: LRU eviction accounting exact, relay status accurate",
  run,
};

async function run(ctx: EdgeSuiteContext): Promise<Check[]> {
  await probeNetem(ctx, "none");
  const lab = await EdgeLab.open(ctx, {
    name: "lab",
    nodes: [{ id: DST, receive: true }, { id: SRC, peers: [DST], toml: { storage: { ceiling_bytes: CEILING_BYTES } } }],
  });
  try {
    return await scenario(ctx, lab);
  } finally {
    await lab.close();
  }
}

async function scenario(ctx: EdgeSuiteContext, lab: EdgeLab): Promise<Check[]> {
  const src = lab.node(SRC);
  const dst = lab.node(DST);
  const n = ctx.params.devices ?? DEFAULT_SEGMENTS;
  ctx.note("segments", n);
  ctx.note("storage_ceiling_bytes", CEILING_BYTES);
  const checks: Check[] = [];
  const segs = seededSegments(ctx.seed, n, SEGMENT_BYTES, 21);
  const ids: string[] = [];
  const samples: Queue[] = [];
  let refusals = 0;
  const t0 = performance.now();
  const giveUp = Date.now() + WAIT_MS;
  for (const s of segs) {
    // Bounded: when nothing is ever delivered the store stays full; the checks then judge what got in.
    while (Date.now() < giveUp) {
      try {
        ids.push((await src.ctl.enqueue(s)).id);
        break;
      } catch (e) {
        if (!(e instanceof LabCtlError) || e.code !== "STORAGE_CEILING_EXCEEDED") throw e;
        refusals += 1;
        samples.push(peerQueue(await src.ctl.status(), DST));
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }
  const w = await waitFor(ctx, WAIT_MS, async () => src.ctl.status(), (st) => {
    samples.push(peerQueue(st, DST));
    return peerQueue(st, DST).acked >= n;
  }, 20);
  const live = w.value;
  const q = peerQueue(live, DST);
  checks.push(equals("drained", q.acked, n, `${n} × ${SEGMENT_BYTES} B acked in ${Math.round(performance.now() - t0)} ms; ${refusals} enqueue(s) refused by the ceiling and sent again`));
  checks.push(equals("no_deadletters", q.deadletter, 0, "nothing dead-lettered"));
  const bad = samples.flatMap((s, i) => (s.scheduled + s.inflight + s.acked + s.failed + s.deadletter === s.total ? [] : [`sample ${i}: states do not add up to ${s.total}`]));
  const mono = monotonicityViolations(samples.filter((s) => s.total === n), n).filter((v) => !v.includes("total"));
  checks.push(equals("queue_accounting", bad.length + mono.length, 0, [...bad, ...mono].slice(0, 2).join("; ") || `${samples.length} status samples: states add up, acked never decreased`));

  // Eviction accounting: exact, against the store.
  const ev = live.store.evictions;
  const stored = live.store.segments;
  checks.push(atLeast("evictions", ev.count, thresholdOf(ctx, "min_evictions", 1), "", `the ceiling holds ${CEILING_SEGMENTS} segments; ${n} were sent`));
  checks.push(equals("evictions_reconcile", n - stored, ev.count, `sent ${n} − still stored ${stored} must be the evictions the store counted`));
  checks.push(equals("evictions_all_lru", ev.by_reason["lru_ceiling"] ?? 0, ev.count, `by reason: ${JSON.stringify(ev.by_reason)}`));
  checks.push(equals("evicted_bytes", ev.bytes, ev.count * SEGMENT_BYTES, "bytes evicted = evictions × segment size"));

  // Status accuracy: live status = the ledger after a restart = the receiver's inbox = the files on disk.
  await src.proc.stop("SIGTERM");
  await src.proc.start();
  const again = await src.ctl.status();
  checks.push(equals("status_after_restart", `${peerQueue(again, DST).acked} acked, ${again.store.segments} stored`, `${q.acked} acked, ${stored} stored`, "the counts edged reads from its ledger and store when it starts again, against the live ones"));
  await src.proc.stop("SIGTERM");
  await dst.proc.stop("SIGTERM");
  const onDisk = (await src.storedSegments()).length;
  checks.push(equals("store_on_disk", onDisk, stored, "segment files in the sender's store after stop, against its status"));
  const inbox = await dst.inbox();
  const p = inboxProblems(ids, inbox);
  checks.push(equals("receiver_inbox", `${inbox.length} entries, ${p.missing} missing, ${p.twice} twice`, `${n} entries, 0 missing, 0 twice`, "the receiver's ledger inbox against the sender's acked count"));
  return checks;
}
