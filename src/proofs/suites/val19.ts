/**
 * VAL19 (RL-IMPW-01/02/03): relay under impairment, between two real edged
 * over mTLS, every link through the impairment proxy (the machine has no
 * netem; the probe's answer is in the notes).
 *
 * - outage: the link is down; every segment reaches DEADLETTER once max_retry
 *   is spent (count = segments sent); the outage lifts and a dead-letter
 *   retry of each delivers them all;
 * - bandwidth 1 and 10 Mbps: every segment delivered; the throughput the
 *   proxy measured is informational (notes);
 * - dial delay 200 and 500 ms (the session is reset so each batch dials
 *   again): delivered, each batch within the dial + ack timeouts, none dead-lettered;
 * - a connection cut after 500 B upstream: retried, delivered once (the
 *   receiver's inbox holds it exactly once).
 *
 * `--devices N` sets the outage segment count (default 50).
 */
import type { Check, EdgeSuite, EdgeSuiteContext } from "../suite.js";
import { atLeast, atMost, equals, thresholdOf } from "../suite.js";
import { enqueueAll, inboxProblems, peerQueue, probeNetem, seededSegments, waitFor } from "../edge/common.js";
import { EdgeLab } from "../edge/lab.js";
import type { LabNode } from "../edge/lab.js";
import type { ImpairProxy } from "../impair-proxy.js";

const DEFAULT_SEGMENTS = 50;
const MAX_RETRY = 3;
const DIAL_TIMEOUT_S = 2;
const ACK_TIMEOUT_S = 10;
const WAIT_MS = 60_000;
const SRC = "v19-src";
const DST = "v19-dst";

export const val19: EdgeSuite = {
  kind: "edge",
  id: "val19",
  claim: "RL-IMPW-01/02/03",
  title: "relay impairment: outage → dead letters → retried and delivered; 1/10 Mbps; 200/500 ms dial delay; a cut connection retried cleanly",
  run,
};

async function run(ctx: EdgeSuiteContext): Promise<Check[]> {
  await probeNetem(ctx);
  const lab = await EdgeLab.open(ctx, {
    name: "lab", impair: true,
    nodes: [
      { id: DST, receive: true },
      { id: SRC, peers: [DST], toml: { relay: { dial_timeout_seconds: DIAL_TIMEOUT_S, ack_timeout_seconds: ACK_TIMEOUT_S }, "relay.retry": { max_retry: MAX_RETRY } } },
    ],
  });
  try {
    return await scenario(ctx, lab);
  } finally {
    await lab.close();
  }
}

async function scenario(ctx: EdgeSuiteContext, lab: EdgeLab): Promise<Check[]> {
  const src = lab.node(SRC);
  const proxy = lab.proxy(SRC, DST);
  const checks: Check[] = [];
  const sent: string[] = [];
  const n = ctx.params.devices ?? DEFAULT_SEGMENTS;
  ctx.note("outage_segments", n);
  ctx.note("max_retry", MAX_RETRY);

  // RL-IMPW-01: outage → DEADLETTER for every segment, then retry → delivered.
  proxy.set({ down: true });
  proxy.resetAll();
  const outage = await enqueueAll(src, seededSegments(ctx.seed, n, 1024, 19));
  sent.push(...outage);
  const dl = await waitFor(ctx, WAIT_MS, () => src.ctl.status(), (s) => peerQueue(s, DST).deadletter >= n);
  const listed = await src.ctl.deadletters();
  checks.push(equals("outage_deadlettered", peerQueue(dl.value, DST).deadletter, n, `segments sent during the outage that reached DEADLETTER in ${Math.round(dl.ms)} ms (max_retry ${MAX_RETRY}); ${listed.length} listed; proxy refused ${proxy.stats().refused} connection(s)`));
  checks.push(equals("outage_nothing_acked", peerQueue(dl.value, DST).acked, 0, "nothing can be acknowledged through a down link"));
  proxy.set({ down: false });
  for (const d of listed) await src.ctl.retry(d.segment_id, d.peer_id);
  const back = await waitFor(ctx, WAIT_MS, () => src.ctl.status(), (s) => peerQueue(s, DST).acked >= n);
  checks.push(equals("deadletter_retry_delivered", peerQueue(back.value, DST).acked, n, `acked ${Math.round(back.ms)} ms after the outage lifted and ${listed.length} dead letters were retried`));

  // RL-IMPW-02: bandwidth impairment, delivery confirmed; throughput informational.
  for (const [label, bps] of [["1mbps", 125_000], ["10mbps", 1_250_000]] as const) {
    const count = label === "1mbps" ? 4 : 16;
    const r = await batch(ctx, src, proxy, { bytesPerSecond: bps }, seededSegments(ctx.seed, count, 32 * 1024, bps));
    sent.push(...r.ids);
    checks.push(equals(`bandwidth_${label}_delivered`, r.delivered, count, `${count} × 32 KiB at ${bps * 8 / 1e6} Mbps in ${Math.round(r.ms)} ms`));
    ctx.note(`bandwidth_${label}_configured_Bps`, bps);
    ctx.note(`bandwidth_${label}_measured_Bps`, Math.round(r.bytesUp / (r.ms / 1000)));
  }

  // RL-IMPW-03: dial delay; every batch dials anew (the session is reset) and must land within dial + ack timeouts.
  for (const delay of [200, 500]) {
    const r = await batch(ctx, src, proxy, { bytesPerSecond: 0, dialDelayMs: delay }, seededSegments(ctx.seed, 5, 4096, delay), true);
    sent.push(...r.ids);
    checks.push(equals(`latency_${delay}ms_delivered`, r.delivered, 5, `5 × 4 KiB, ${r.dials} new connection(s) through a ${delay} ms dial delay`));
    checks.push(atLeast(`latency_${delay}ms_impaired_ms`, r.ms, delay, "ms", "the batch cannot beat the dial delay: the impairment was in the path"));
    checks.push(atMost(`latency_${delay}ms_delivery_ms`, r.ms, thresholdOf(ctx, `latency_${delay}ms_delivery_ms`, (DIAL_TIMEOUT_S + ACK_TIMEOUT_S) * 1000), "ms", "from enqueue to acked, bounded by the dial + ack timeouts"));
    checks.push(equals(`latency_${delay}ms_deadletters`, r.deadletters, 0, "no delivery timed out to DEADLETTER"));
  }

  // A connection cut after 500 B upstream: retried, delivered once.
  proxy.set({ dialDelayMs: 0 });
  const cutsBefore = proxy.stats().cuts;
  const cut = await batch(ctx, src, proxy, { cutAfterBytes: 500 }, seededSegments(ctx.seed, 1, 64 * 1024, 500), true);
  sent.push(...cut.ids);
  checks.push(equals("cut_connection_cut", proxy.stats().cuts - cutsBefore, 1, "the proxy cut one connection after 500 B"));
  checks.push(equals("cut_retried_delivered", cut.delivered, 1, `delivered in ${Math.round(cut.ms)} ms`));

  // The receiver's inbox after both stop: everything sent, each exactly once.
  await src.proc.stop("SIGTERM");
  const dst = lab.node(DST);
  await dst.proc.stop("SIGTERM");
  const inbox = await dst.inbox();
  const p = inboxProblems(sent, inbox);
  const cutEntry = inbox.filter((e) => e.segment_id === cut.ids[0]);
  checks.push(equals("cut_inbox_once", cutEntry.length, 1, `inbox entries for the cut segment (${cutEntry[0]?.duplicates ?? 0} further push(es) acked again, not delivered)`));
  checks.push(equals("inbox_missing", p.missing, 0, `of ${sent.length} segments sent over the whole run`));
  checks.push(equals("inbox_duplicates", p.twice, 0, "segments in the receiver's inbox more than once"));
  return checks;
}

interface BatchResult {
  ids: string[];
  delivered: number;
  deadletters: number;
  ms: number;
  bytesUp: number;
  dials: number;
}

/** Applies an impairment, sends a batch and waits until it is acked (or dead-lettered, or the wait runs out). */
async function batch(ctx: EdgeSuiteContext, src: LabNode, proxy: ImpairProxy, impair: Parameters<ImpairProxy["set"]>[0], segs: Buffer[], redial = false): Promise<BatchResult> {
  const before = await src.ctl.status();
  const q0 = peerQueue(before, DST);
  proxy.set(impair);
  // The transport keeps one session per peer: reset it so this batch dials through the impairment.
  if (redial) proxy.resetAll();
  const s0 = proxy.stats();
  const t0 = performance.now();
  const ids = await enqueueAll(src, segs);
  const w = await waitFor(ctx, WAIT_MS, () => src.ctl.status(), (s) => {
    const q = peerQueue(s, DST);
    return q.acked + (q.deadletter - q0.deadletter) >= q0.acked + ids.length;
  });
  const ms = performance.now() - t0;
  const q = peerQueue(w.value, DST);
  const s1 = proxy.stats();
  return { ids, delivered: q.acked - q0.acked, deadletters: q.deadletter - q0.deadletter, ms, bytesUp: s1.bytes_up - s0.bytes_up, dials: s1.connections - s0.connections };
}
