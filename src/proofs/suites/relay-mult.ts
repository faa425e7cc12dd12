/**
 * RL-MULT-01 (the seed deferred it): delivery isolation between peers. A
 * real edged sends the same seeded segments to three peers, one of them
 * dead — its link accepts connections and never carries a byte (a black
 * hole: the harshest dead peer, each push to it waits out the dial timeout).
 * The two live peers must get every segment, no later than in a baseline run
 * with the same seed and no dead peer; the dead peer's deliveries end in
 * retries and dead letters, for it alone.
 *
 * `--devices N` sets the segment count (default 40).
 */
import type { Check, EdgeSuite, EdgeSuiteContext } from "../suite.js";
import { atMost, equals, round1, thresholdOf } from "../suite.js";
import { enqueueAll, inboxProblems, peerQueue, probeNetem, seededSegments, waitFor } from "../edge/common.js";
import { EdgeLab } from "../edge/lab.js";

const DEFAULT_SEGMENTS = 40;
const SIZE = 8 * 1024;
const WAIT_MS = 120_000;
const SRC = "mult-src";
const LIVE = ["mult-p1", "mult-p2"] as const;
const DEAD = "mult-p3";
/** Baselines shorter than this are compared as this long: below it, scheduling noise is the whole difference. */
const FLOOR_MS = 1000;

export const relayMult: EdgeSuite = {
  kind: "edge",
  id: "relay-mult",
  claim: "RL-MULT-01",
  title: "multi-peer isolation: three peers, one dead; the live two get everything, undelayed; the dead one's deliveries dead-letter alone",
  run,
};

interface Run {
  ms: number;
  acked: Record<string, number>;
  ids: string[];
}

async function run(ctx: EdgeSuiteContext): Promise<Check[]> {
  await probeNetem(ctx);
  const n = ctx.params.devices ?? DEFAULT_SEGMENTS;
  ctx.note("segments", n);
  ctx.note("dead_peer", "black hole: connections accepted, never forwarded (dial delay 1 h in the proxy)");
  const base = await liveDelivery(ctx, "baseline", false, n);
  const checks: Check[] = [];
  const withDead = await liveDelivery(ctx, "with-dead", true, n, checks);
  const ratio = withDead.ms / Math.max(base.ms, FLOOR_MS);
  for (const p of [...LIVE].reverse()) checks.unshift(equals(`${p}_delivered`, withDead.acked[p] ?? 0, n, `with the dead peer; baseline ${base.acked[p] ?? 0}/${n}`));
  checks.push(atMost("live_delivery_slowdown", ratio, thresholdOf(ctx, "live_delivery_slowdown", 1.5), "×", `live peers done in ${Math.round(withDead.ms)} ms with the dead peer, ${Math.round(base.ms)} ms without (same seed; baseline floored at ${FLOOR_MS} ms)`));
  ctx.note("baseline_ms", round1(base.ms));
  ctx.note("with_dead_ms", round1(withDead.ms));
  return checks;
}

/** One lab: the sender, the live peers and (withDead) the dead one; returns when the live peers acked everything. */
async function liveDelivery(ctx: EdgeSuiteContext, name: string, withDead: boolean, n: number, checks?: Check[]): Promise<Run> {
  const peers = withDead ? [...LIVE, DEAD] : [...LIVE];
  const lab = await EdgeLab.open(ctx, {
    name, impair: true,
    nodes: [...peers.map((id) => ({ id, receive: true })), { id: SRC, peers, toml: { relay: { success_condition: "all_peers", dial_timeout_seconds: 1 }, "relay.retry": { max_retry: 3 } } }],
  });
  try {
    if (withDead) lab.proxy(SRC, DEAD).set({ dialDelayMs: 3_600_000 });
    const src = lab.node(SRC);
    const t0 = performance.now();
    const ids = await enqueueAll(src, seededSegments(ctx.seed, n, SIZE, 77));
    const w = await waitFor(ctx, WAIT_MS, () => src.ctl.status(), (s) => LIVE.every((p) => peerQueue(s, p).acked >= n));
    const ms = performance.now() - t0;
    const acked = Object.fromEntries(LIVE.map((p) => [p, peerQueue(w.value, p).acked]));
    if (withDead && checks) {
      const dead = await waitFor(ctx, WAIT_MS, () => src.ctl.status(), (s) => peerQueue(s, DEAD).deadletter >= n);
      const qd = peerQueue(dead.value, DEAD);
      checks.push(equals("dead_peer_deadlettered", `${qd.deadletter} dead, ${qd.acked} acked`, `${n} dead, 0 acked`, `the dead peer's deliveries ${Math.round(dead.ms)} ms after the live ones finished (max_retry 3, dial timeout 1 s)`));
      const liveDead = LIVE.map((p) => peerQueue(dead.value, p).deadletter).reduce((a, b) => a + b, 0);
      checks.push(equals("live_peers_no_deadletters", liveDead, 0, "dead letters of the live peers"));
      const dl = await src.ctl.deadletters();
      checks.push(equals("deadletters_only_dead_peer", dl.filter((d) => d.peer_id !== DEAD).length, 0, `${dl.length} listed, all for ${DEAD}`));
      await src.proc.stop("SIGTERM");
      for (const p of LIVE) {
        const node = lab.node(p);
        await node.proc.stop("SIGTERM");
        const pr = inboxProblems(ids, await node.inbox());
        checks.push(equals(`${p}_inbox`, `${pr.missing} missing, ${pr.twice} twice`, "0 missing, 0 twice", "the live peer's inbox after stop"));
      }
    }
    return { ms, acked, ids };
  } finally {
    await lab.close();
  }
}
