/**
 * VAL20 (RL-THRU-01): relay throughput over five tiers of queue depth
 * (T1–T5: 1, 10, 25, 50, 100 segments enqueued at once), segs/s and bytes/s
 * each, from a real edged to another over mTLS; zero loss (the receiver's
 * inbox holds every segment exactly once); queue accounting monotonic,
 * sampled from `relay status` during each drain (acked never decreases, the
 * total stays the number enqueued, the states add up to it); and a tier at
 * 1 Mbps (the impairment proxy) shows backpressure: the queue builds up and
 * the measured rate stays at the link's.
 *
 * `--devices N` scales the tiers down to at most N segments (tiers above N are capped at N).
 */
import type { Check, EdgeSuite, EdgeSuiteContext } from "../suite.js";
import { atLeast, atMost, equals, round1, thresholdOf } from "../suite.js";
import type { Queue } from "../edge/ctl.js";
import { enqueueAll, inboxProblems, monotonicityViolations, peerQueue, pending, probeNetem, seededSegments, waitFor } from "../edge/common.js";
import { EdgeLab } from "../edge/lab.js";
import type { LabNode } from "../edge/lab.js";

export const TIERS = [1, 10, 25, 50, 100] as const;
const SEGMENT_BYTES = 16 * 1024;
const BACKPRESSURE_BPS = 125_000;
const BACKPRESSURE_SEGMENTS = 20;
const WAIT_MS = 120_000;
const SRC = "v20-src";
const DST = "v20-dst";

export const val20: EdgeSuite = {
  kind: "edge",
  id: "val20",
  claim: "RL-THRU-01",
  title: "relay throughput over five tiers (queue depth 1 → 100), zero loss, monotonic queue accounting, backpressure at 1 Mbps",
  run,
};

async function run(ctx: EdgeSuiteContext): Promise<Check[]> {
  await probeNetem(ctx);
  const lab = await EdgeLab.open(ctx, { name: "lab", impair: true, nodes: [{ id: DST, receive: true }, { id: SRC, peers: [DST] }] });
  try {
    return await scenario(ctx, lab);
  } finally {
    await lab.close();
  }
}

interface Drain {
  ids: string[];
  ms: number;
  drained: boolean;
  samples: Queue[];
  peakPending: number;
  acked: number;
  /** What the peer's queue total must be during the drain: before + this tier. */
  total: number;
}

async function scenario(ctx: EdgeSuiteContext, lab: EdgeLab): Promise<Check[]> {
  const src = lab.node(SRC);
  const checks: Check[] = [];
  const sent: string[] = [];
  const cap = ctx.params.devices;
  const minSegs = thresholdOf(ctx, "min_segs_per_s", 1);
  ctx.note("segment_bytes", SEGMENT_BYTES);
  ctx.note("link", "every tier through the impairment proxy; unimpaired except the backpressure tier");
  for (const [i, depth0] of TIERS.entries()) {
    const depth = cap === undefined ? depth0 : Math.min(depth0, cap);
    const d = await drain(ctx, src, seededSegments(ctx.seed, depth, SEGMENT_BYTES, 2000 + i));
    sent.push(...d.ids);
    const t = `t${i + 1}`;
    const segsPerS = depth / (d.ms / 1000);
    checks.push(equals(`${t}_delivered`, d.acked, depth, `queue depth ${depth}, drained in ${Math.round(d.ms)} ms`));
    checks.push(atLeast(`${t}_segs_per_s`, segsPerS, minSegs, "segs/s", `${round1((depth * SEGMENT_BYTES) / (d.ms / 1000) / 1024)} KiB/s`));
    ctx.note(`${t}_bytes_per_s`, Math.round((depth * SEGMENT_BYTES) / (d.ms / 1000)));
    const v = monotonicityViolations(d.samples, d.total);
    checks.push(equals(`${t}_queue_monotonic`, v.length, 0, v.slice(0, 2).join("; ") || `${d.samples.length} status samples during the drain`));
  }

  // Backpressure: the link at 1 Mbps, more bytes than it carries in a second.
  const proxy = lab.proxy(SRC, DST);
  proxy.set({ bytesPerSecond: BACKPRESSURE_BPS });
  const b0 = proxy.stats().bytes_up;
  const bp = await drain(ctx, src, seededSegments(ctx.seed, BACKPRESSURE_SEGMENTS, SEGMENT_BYTES, 2999));
  sent.push(...bp.ids);
  const rate = (proxy.stats().bytes_up - b0) / (bp.ms / 1000);
  checks.push(equals("backpressure_delivered", bp.acked, BACKPRESSURE_SEGMENTS, `${BACKPRESSURE_SEGMENTS} × 16 KiB at 1 Mbps in ${Math.round(bp.ms)} ms`));
  checks.push(atLeast("backpressure_queue_peak", bp.peakPending, thresholdOf(ctx, "backpressure_queue_peak", BACKPRESSURE_SEGMENTS / 2), "segments", "the most deliveries waiting at once while the slow link drained (the queue absorbed the difference)"));
  checks.push(atMost("backpressure_rate_Bps", rate, thresholdOf(ctx, "backpressure_rate_Bps", Math.round(BACKPRESSURE_BPS * 1.1)), "B/s", `bytes through the link per second (TLS framing included); link ${BACKPRESSURE_BPS} B/s`));
  const bv = monotonicityViolations(bp.samples, bp.total);
  checks.push(equals("backpressure_queue_monotonic", bv.length, 0, bv.slice(0, 2).join("; ") || `${bp.samples.length} samples`));
  proxy.set({ bytesPerSecond: 0 });

  await src.proc.stop("SIGTERM");
  const dst = lab.node(DST);
  await dst.proc.stop("SIGTERM");
  const p = inboxProblems(sent, await dst.inbox());
  checks.push(equals("zero_loss", p.missing, 0, `segments of ${sent.length} sent missing from the receiver's inbox`));
  checks.push(equals("no_duplicates", p.twice, 0, "segments in the inbox more than once"));
  return checks;
}

/** Enqueues the tier, then samples the peer's queue until it drained (every delivery acked). */
async function drain(ctx: EdgeSuiteContext, src: LabNode, segs: Buffer[]): Promise<Drain> {
  const q0 = peerQueue(await src.ctl.status(), DST);
  const t0 = performance.now();
  const ids = await enqueueAll(src, segs);
  const samples: Queue[] = [];
  let peak = 0;
  const w = await waitFor(ctx, WAIT_MS, async () => peerQueue(await src.ctl.status(), DST), (q) => {
    samples.push(q);
    peak = Math.max(peak, pending(q));
    return q.acked - q0.acked >= ids.length;
  }, 20);
  return { ids, ms: performance.now() - t0, drained: w.ok, samples, peakPending: peak, acked: w.value.acked - q0.acked, total: q0.total + ids.length };
}
